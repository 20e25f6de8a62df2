# Two commands do everything on a fresh machine:
#   make          set up the pinned environment in .venv and run the whole pipeline (dvc repro)
#   make test     set up the same environment, plus Ray for mnist-sweep and tf-keras for the
#                 benchmark, and run the linter and the tests
.NOTPARALLEL:  # the set-up targets install into one .venv, one at a time
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1
PYTHON ?= python3

.PHONY: all help check deps setup setup-dev setup-sweep setup-bench setup-gpu bench numerics-matrix system-packages repro verify test lint lock lock-extras lock-gpu clean

all: repro  ## set up the pinned environment and run the whole pipeline (the default)

setup: $(VENV)/.installed build/plots.html  ## the pinned environment in .venv: the stages', the server's and the remotes' locks

# Locks by role (pyproject.toml): the stages' packages in requirements.lock, the only lock a
# stage depends on; the server's and the remotes' beside it. `make` installs these three, then
# this project's library (mnist_dvc, editable: stages and console scripts run the checkout's
# code) without touching the locked versions. The test tools, Ray and tf-keras come on top.
APP_LOCKS := requirements.lock requirements-serve.lock requirements-remotes.lock
PIP := $(VENV)/bin/pip install --quiet --disable-pip-version-check

$(VENV)/.installed: $(APP_LOCKS) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) $(addprefix -r ,$(APP_LOCKS))
	$(PIP) --no-deps --no-build-isolation -e .
	touch $@

# pytest, pytest-xdist, ruff, hypothesis, httpx and playwright, for `make test` and `make check`.
setup-dev: setup $(VENV)/.installed-dev  ## setup, and the test tools (requirements-dev.lock)

$(VENV)/.installed-dev: requirements-dev.lock $(VENV)/.installed
	$(PIP) $(addprefix -r ,$(APP_LOCKS)) -r requirements-dev.lock
	touch $@

# Ray, for mnist-sweep only (the optional `sweep` extra): the pipeline never imports it.
setup-sweep: $(VENV)/.installed-sweep  ## add Ray for mnist-sweep (requirements-sweep.lock)

$(VENV)/.installed-sweep: requirements-sweep.lock $(VENV)/.installed
	$(PIP) -r requirements.lock -r requirements-sweep.lock
	touch $@

# tf-keras (Keras 2 for this TensorFlow), for the benchmark's notebook anchor only.
setup-bench: $(VENV)/.installed-bench  ## add tf-keras for the benchmark (requirements-bench.lock)

$(VENV)/.installed-bench: requirements-bench.lock $(VENV)/.installed
	$(PIP) -r requirements.lock -r requirements-bench.lock
	touch $@

# TensorFlow's CUDA libraries, for a machine with an NVIDIA GPU: the pipeline runs there under
# `numerics: native` (portable hides the GPU). Built, untested: no run has used it on a GPU.
setup-gpu: $(VENV)/.installed-gpu  ## add TensorFlow's CUDA libraries (requirements-gpu.lock; untested)

$(VENV)/.installed-gpu: requirements-gpu.lock $(VENV)/.installed
	$(PIP) -r requirements.lock -r requirements-gpu.lock
	touch $@

# The page template that lets `dvc plots` draw offline (Vega libraries from npm, inlined).
build/plots.html: package-lock.json scripts/build_plots_template.py | $(VENV)/.installed
	npm ci --silent --no-audit --no-fund
	$(VENV)/bin/python scripts/build_plots_template.py node_modules $@

# Debian packages for the servers and the browser the tests use (root; CI runs it too).
system-packages:  ## Debian packages for the test servers and the browser (root)
	scripts/install-system-packages

# The run ends with the verdict against the committed results; it informs and fails nothing.
repro: setup  ## dvc repro, the metrics, and the verdict against the committed results
	dvc repro
	dvc metrics show
	@mnist-verify || true

# Do the work tree's results (after `make` or `dvc repro`) reproduce the committed ones?
# identical, equivalent (and what was made differently) or different; see mnist_dvc/verify/.
verify: setup  ## identical, equivalent or different: the work tree's results against HEAD's
	mnist-verify

# Each stage's code deps in dvc.yaml, from the imports (scripts/stage_deps.py): run it after
# adding an import; on a tree whose deps are current it changes nothing.
deps: setup  ## write each stage's code deps in dvc.yaml from the stages' imports
	python scripts/stage_deps.py

lint: setup-dev  ## ruff check and ruff format --check
	ruff check .
	ruff format --check .

# Two pytest-xdist processes: many tests wait on servers, git, dvc or one core, and each test file
# stays in one process, so that its fixtures are built once (tests/conftest.py).
PYTEST := pytest -n 2 --dist loadfile

test: lint setup-sweep setup-bench  ## lint and every test (what CI runs)
	$(PYTEST) --durations=25

# The fast loop: lint, then every test not marked slow.
check: lint  ## lint and the fast loop (pytest -m 'not slow')
	$(PYTEST) -m "not slow"

help:  ## this list
	@awk -F ':.*## ' '/^[a-z-]+:.*## / { printf "  make %-16s %s\n", $$1, $$2 }' Makefile

# Speed against the notebook and the machine's limit (README, "Performance"). SEEDS=1 runs only
# the 12-epoch seed study and adds it to benchmarks/bench.json (about 100 minutes here);
# NUMERICS=1 only the portable-against-native study (about 9 minutes); FULL=1 runs all, and on
# a CPU with AVX512_BF16 or AMX 12 epochs of numerics: native with mixed_bfloat16, which MIXED=1
# runs alone.
bench: setup-bench  ## speed and accuracy against the notebook (SEEDS=1, NUMERICS=1, MIXED=1, FULL=1)
	dvc repro preprocess
	python scripts/bench.py$(if $(SEEDS), --seeds)$(if $(NUMERICS), --numerics-only)$(if $(MIXED), --mixed-only)$(if $(FULL), --full)

# Does the portable training computation give the same bits at 1, 2, 4 and 8 threads, and under
# qemu's emulated CPU models (Debian's qemu-user; 10-30 minutes each here)? Prints the table,
# fingerprint by fingerprint, and writes benchmarks/numerics_matrix.json. EMULATE= (empty) runs
# the native columns only; EMULATE=EPYC-Rome,Haswell chooses the models.
EMULATE ?= Haswell,Cascadelake-Server,EPYC-Rome,EPYC-Milan
numerics-matrix: setup  ## the same bits at every thread count and on emulated CPUs? (EMULATE=...)
	dvc repro preprocess
	python scripts/numerics_matrix.py --emulate "$$EMULATE"

# Re-resolve the stages' direct dependencies in pyproject.toml to exact versions of everything
# (requirements.lock, its comment lines kept), then each extra's lock on top of it.
lock:  ## re-resolve every lock from pyproject.toml
	rm -rf /tmp/mnist-dvc-lock && $(PYTHON) -m venv /tmp/mnist-dvc-lock
	$(PYTHON) -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
	    print('\n'.join(p['dependencies']))" > /tmp/mnist-dvc-lock/in.txt
	/tmp/mnist-dvc-lock/bin/pip install --quiet -r /tmp/mnist-dvc-lock/in.txt
	{ grep '^#' requirements.lock; \
	  /tmp/mnist-dvc-lock/bin/pip freeze --exclude-editable; } > /tmp/mnist-dvc-lock/lock
	mv /tmp/mnist-dvc-lock/lock requirements.lock
	$(MAKE) lock-extras

# What tensorflow[and-cuda] adds to requirements.lock, resolved by pip without downloading it.
lock-gpu: setup  ## re-resolve requirements-gpu.lock (metadata only)
	$(VENV)/bin/pip install --dry-run --ignore-installed --quiet --report /tmp/mnist-dvc-gpu.json \
	    -r requirements.lock "tensorflow[and-cuda]==$$(sed -n 's/^tensorflow==//p' requirements.lock)"
	$(VENV)/bin/python scripts/lock_gpu.py /tmp/mnist-dvc-gpu.json

# Each optional group's lock: what installing it on top of requirements.lock adds, in a venv of
# its own (pip refuses if the group needs other versions of locked packages). The lock's own
# comment lines are kept.
EXTRAS := serve remotes dev sweep bench
lock-extras:  ## re-resolve only the extras' locks
	for extra in $(EXTRAS); do \
	  venv=/tmp/mnist-dvc-lock-$$extra && rm -rf $$venv && $(PYTHON) -m venv $$venv && \
	  $(PYTHON) -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
	      print('\n'.join(p['optional-dependencies']['$$extra']))" > $$venv/in.txt && \
	  $$venv/bin/pip install --quiet -r requirements.lock -r $$venv/in.txt && \
	  { grep '^#' requirements-$$extra.lock; \
	    $$venv/bin/pip freeze --exclude-editable | grep -vxFf requirements.lock; \
	  } > $$venv/lock && mv $$venv/lock requirements-$$extra.lock || exit 1; \
	done

clean:  ## remove .venv, node_modules and build/
	rm -rf $(VENV) node_modules build

# The model registry (docs/releases.md); run `make setup` first. The values given as VERSION,
# STAGE, DEST and REMOTE (and numerics-matrix's EMULATE) reach the commands as environment
# variables, taken literally (not expanded by make: `$(value ...)`) and quoted for the shell
# ("$$VERSION"): no value can run code. Each is an option's value (`--stage=...`) or comes
# after `--`, so none can be read as an option: VERSION=--help is a version, and refused.
USER_VALUES := VERSION STAGE DEST REMOTE EMULATE SPOOL FORCE
$(foreach v,$(USER_VALUES),$(eval override $(v) := $$(value $(v))))
export $(USER_VALUES)
.PHONY: release promote publish drawings

# Tag HEAD as a version of mnist-cnn, optionally with a stage (dev, staging, prod); refused
# unless git and `dvc status` are clean and the model is in the default DVC remote.
release:  ## register HEAD as VERSION of mnist-cnn [STAGE=prod]
	$(if $(VERSION),,$(error usage: make release VERSION=v1.2.0 [STAGE=prod]))
	mnist-release register $${STAGE:+--stage="$$STAGE"} -- "$$VERSION"

# Move a stage to a registered version. Into prod, refused for a model that scores below
# prod's, on MNIST's test set or the out-of-distribution set, by more than the seed spread;
# FORCE=1 rolls back to such a one on purpose.
promote:  ## move STAGE to the registered VERSION [FORCE=1: allow a regression in prod]
	$(if $(and $(VERSION),$(STAGE)),,$(error usage: make promote VERSION=v1.2.0 STAGE=prod))
	$(if $(filter-out 1,$(FORCE)),$(error FORCE=1 allows a regression in prod; nothing else is a value of FORCE))
	mnist-release promote $${FORCE:+--allow-regression} -- "$$VERSION" "$$STAGE"

# The drawings that `mnist-serve --feedback-dir SPOOL` collected, as the next version of the
# mnist-drawings data set (docs/drawings.md): data/drawings, committed and tagged.
drawings:  ## version the feedback folder SPOOL as mnist-drawings [VERSION=v1.1.0]
	$(if $(SPOOL),,$(error usage: make drawings SPOOL=feedback [VERSION=v1.1.0]))
	mnist-drawings version --spool="$$SPOOL" $${VERSION:+--version="$$VERSION"}

# Copy the local-folder remote's new files to a folder a static web server serves read-only.
publish:  ## copy the local remote's new files to DEST, for a static web server
	$(if $(DEST),,$(error usage: make publish DEST=/var/www/mnist-dvc [REMOTE=local]))
	mnist-release publish $${REMOTE:+--remote="$$REMOTE"} -- "$$DEST"
