"""Model versions and stages as GTO git tags, made only for a model anyone can download.

    mnist-release register v1.2.0 [--stage prod]   # tag: mnist-cnn@v1.2.0
    mnist-release promote v1.2.0 prod              # tag: mnist-cnn#prod#N
    mnist-release publish /srv/www/mnist-dvc       # local remote -> web folder

(`make release VERSION=... [STAGE=...]`, `make promote` and `make publish` call these, handing
the values over as environment variables: no shell and no make expansion ever sees them.)

The subpackage: `cli` (the console script), `checks` (what a release must be),
`tags` (GTO's tags: register, promote, which version a stage holds) and `publish` (a local
remote to a web folder). release.yaml itself is mnist_dvc/released.py: the report stage reads
it, and the pipeline never imports this subpackage.

`register` commits release.yaml (the version, for the model card) on HEAD and tags that commit.
It refuses, in one line and before any commit or tag exists, a commit that does not describe the
model: a dirty git tree, a pipeline that `dvc status` says is out of date, or a model file that
is not in the default DVC remote (consumers of a tag would get "missing cache files"). The
remote is checked file by file (`dvc data status --not-in-remote --granular`): `dvc status -c`
trusts a directory's `.dir` listing and misses a file missing inside a directory output.

The artifact and its path are declared in dvc.yaml (`artifacts: mnist-cnn`); see
docs/releases.md for the consumer side: `dvc artifacts get`, `dvc.api.open`.
"""
