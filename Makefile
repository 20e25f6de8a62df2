# Two commands do everything on a fresh machine:
#   make          set up the pinned environment in .venv and run the whole pipeline (dvc repro)
#   make test     set up the same environment, plus Ray for mnist-sweep and tf-keras for the
#                 benchmark, and run the linter and the tests
.NOTPARALLEL:  # the set-up targets install into one .venv, one at a time
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1
PYTHON ?= python3

.PHONY: all setup setup-sweep setup-bench bench system-packages repro test lint lock lock-extras clean

all: repro

setup: $(VENV)/.installed build/plots.html

# The locked packages, then this project's library (mnist_dvc, editable: stages and console
# scripts run the checkout's code) without touching the locked versions.
$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# Ray, for mnist-sweep only (the optional `sweep` extra): the pipeline never imports it.
setup-sweep: $(VENV)/.installed-sweep

$(VENV)/.installed-sweep: requirements-sweep.lock $(VENV)/.installed
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.lock -r requirements-sweep.lock
	touch $@

# tf-keras (Keras 2 for this TensorFlow), for the benchmark's notebook anchor only.
setup-bench: $(VENV)/.installed-bench

$(VENV)/.installed-bench: requirements-bench.lock $(VENV)/.installed
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.lock -r requirements-bench.lock
	touch $@

# The page template that lets `dvc plots` draw offline (Vega libraries from npm, inlined).
build/plots.html: package-lock.json scripts/build_plots_template.py | $(VENV)/.installed
	npm ci --silent --no-audit --no-fund
	$(VENV)/bin/python scripts/build_plots_template.py node_modules $@

# Debian packages for the servers and the browser the tests use (root; CI runs it too).
system-packages:
	scripts/install-system-packages

repro: setup
	dvc repro
	dvc metrics show

lint: setup
	ruff check .
	ruff format --check .

test: lint setup-sweep setup-bench
	pytest --durations=25

# Speed against the notebook and the machine's limit (README, "Performance"). SEEDS=1 runs only
# the 12-epoch seed study and adds it to benchmarks/bench.json (about 100 minutes here); FULL=1
# runs both, and 12 epochs of mixed_bfloat16 (hours on a CPU without bf16 instructions).
bench: setup-bench
	dvc repro preprocess
	python scripts/bench.py$(if $(SEEDS), --seeds)$(if $(FULL), --full)

# Re-resolve the direct dependencies in pyproject.toml to exact versions of everything.
lock:
	rm -rf /tmp/mnist-dvc-lock && $(PYTHON) -m venv /tmp/mnist-dvc-lock
	$(PYTHON) -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
	    print('\n'.join(p['dependencies'] + p['optional-dependencies']['dev']))" > /tmp/mnist-dvc-lock/in.txt
	/tmp/mnist-dvc-lock/bin/pip install --quiet -r /tmp/mnist-dvc-lock/in.txt
	{ echo "# Exact versions of every package, for Python 3.11 on Linux x86_64."; \
	  echo "# Regenerate with: make lock"; \
	  /tmp/mnist-dvc-lock/bin/pip freeze --exclude-editable; } > requirements.lock
	$(MAKE) lock-extras

# Each optional group's lock: what installing it on top of requirements.lock adds, in a venv of
# its own (pip refuses if the group needs other versions of locked packages). The lock's own
# comment lines are kept.
EXTRAS := sweep bench
lock-extras:
	for extra in $(EXTRAS); do \
	  venv=/tmp/mnist-dvc-lock-$$extra && rm -rf $$venv && $(PYTHON) -m venv $$venv && \
	  $(PYTHON) -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
	      print('\n'.join(p['optional-dependencies']['$$extra']))" > $$venv/in.txt && \
	  $$venv/bin/pip install --quiet -r requirements.lock -r $$venv/in.txt && \
	  { grep '^#' requirements-$$extra.lock; \
	    $$venv/bin/pip freeze --exclude-editable | grep -vxFf requirements.lock; \
	  } > $$venv/lock && mv $$venv/lock requirements-$$extra.lock || exit 1; \
	done

clean:
	rm -rf $(VENV) node_modules build

# The model registry (README.md, "Model versions and stages"); run `make setup` first.
# Tag HEAD as a version of mnist-cnn, optionally with a stage (dev, staging, prod); refused
# unless git and `dvc status` are clean and the model is in the default DVC remote.
.PHONY: release promote publish
release:
	$(if $(VERSION),,$(error usage: make release VERSION=v1.2.0 [STAGE=prod]))
	python -m mnist_dvc.release register '$(VERSION)'$(if $(STAGE), --stage '$(STAGE)')

# Move a stage to a registered version (also back to an older one).
promote:
	$(if $(and $(VERSION),$(STAGE)),,$(error usage: make promote VERSION=v1.2.0 STAGE=prod))
	python -m mnist_dvc.release promote '$(VERSION)' '$(STAGE)'

# Copy the local-folder remote's new files to a folder a static web server serves read-only.
publish:
	$(if $(DEST),,$(error usage: make publish DEST=/var/www/mnist-dvc [REMOTE=local]))
	python -m mnist_dvc.release publish '$(DEST)'$(if $(REMOTE), --remote '$(REMOTE)')
