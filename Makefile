# Two commands do everything on a fresh machine:
#   make          set up the pinned environment in .venv and run the whole pipeline (dvc repro)
#   make test     set up the same environment and run the linter and the tests
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1
PYTHON ?= python3

.PHONY: all setup repro test lint lock clean

all: repro

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.lock
	touch $@

repro: setup
	dvc repro
	dvc metrics show

lint: setup
	ruff check .
	ruff format --check .

test: lint
	pytest

# Re-resolve the direct dependencies in pyproject.toml to exact versions of everything.
lock:
	rm -rf /tmp/mnist-dvc-lock && $(PYTHON) -m venv /tmp/mnist-dvc-lock
	$(PYTHON) -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
	    print('\n'.join(p['dependencies'] + p['optional-dependencies']['dev']))" > /tmp/mnist-dvc-lock/in.txt
	/tmp/mnist-dvc-lock/bin/pip install --quiet -r /tmp/mnist-dvc-lock/in.txt
	{ echo "# Exact versions of every package, for Python 3.11 on Linux x86_64."; \
	  echo "# Regenerate with: make lock"; \
	  /tmp/mnist-dvc-lock/bin/pip freeze --exclude-editable; } > requirements.lock

clean:
	rm -rf $(VENV) .partial
