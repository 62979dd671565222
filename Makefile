# devstral-proxy: `make run` serves on :9000 (with a simulated vLLM unless UPSTREAM is set);
# `make test` runs the suite. Both build the virtualenv they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 9000
SIM_PORT ?= 8000
UPSTREAM ?=
CONFIG ?=

.PHONY: run test lint venv agents clean sim bench bench-translate bench-routing bench-quick bench-versus bench-paced bench-one csharp-test csharp-sample

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

# make run / make sim: the proxy and the simulator only (no test tools); the full venv serves too
$(VENV)/.runtime: pyproject.toml
	@if [ -f $(VENV)/.installed ] && [ $(VENV)/.installed -nt pyproject.toml ]; then touch $@; else \
	  $(PYTHON) -m venv $(VENV) && $(PY) -m pip install -q --upgrade pip && $(PY) -m pip install -q -e '.[bench]' && touch $@; fi

# the config file's port unless PORT is given (make run CONFIG=config.yaml PORT=9001)
PORT_FLAG = $(if $(CONFIG),$(if $(filter command line environment,$(origin PORT)),--port $(PORT)),--port $(PORT))

run: $(VENV)/.runtime
ifeq ($(strip $(UPSTREAM)$(CONFIG)),)
	@$(PY) -m bench.wait --free $(SIM_PORT) || { \
	  echo "Port $(SIM_PORT) is in use (a vLLM already running there?): 'make run UPSTREAM=http://127.0.0.1:$(SIM_PORT)'"; \
	  echo "puts the proxy in front of it; 'make run SIM_PORT=<a free port>' starts the simulator elsewhere (PORT=<port> moves the proxy)."; exit 1; }
	@echo "No UPSTREAM given: starting the simulated vLLM on :$(SIM_PORT)"
	@$(PY) -m bench.simulator --port $(SIM_PORT) --token-delay 0.02 & sim=$$!; \
	trap "kill $$sim 2>/dev/null" EXIT INT TERM; \
	$(PY) -m bench.wait --ready http://127.0.0.1:$(SIM_PORT)/health && \
	$(PY) -m devstral_proxy --upstream http://127.0.0.1:$(SIM_PORT) --port $(PORT) --map gpt-4=mistral-sim
else
	$(PY) -m devstral_proxy $(if $(CONFIG),--config $(CONFIG)) $(if $(UPSTREAM),--upstream $(UPSTREAM)) $(PORT_FLAG)
endif

sim: $(VENV)/.runtime
	$(PY) -m bench.simulator --port $(SIM_PORT) --token-delay 0.02

test: venv
	$(PY) -m pytest

agents:  # the published agents tests/test_agents.py runs (pinned; under .agents/); .ci/run installs them
	bash tests/agents/install.sh

lint: venv  # fast: style, then the types of both halves
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy -p devstral_translate -p devstral_proxy

bench: venv  # needs nginx and wrk (apt-get install nginx-light wrk)
	$(PY) -m bench.compare

bench-routing: venv  # affinity and the prefix cache, then the saturation scenario (queue, fairness, engine load)
	$(PY) -m bench.routing
	$(PY) -m bench.saturation

bench-quick: venv  # the per-request cost beside bench/baseline.json (reports; not a pass/fail step)
	$(PY) -m bench.quick

bench-paced: venv  # many paced streams and large requests: direct, nginx, the byte-relay floor, the proxy (needs nginx)
	$(PY) -m bench.paced
	$(PY) -m bench.paced --big

bench-one: venv  # one connection: where the time of a lone request goes (needs nginx and valgrind)
	$(PY) -m bench.one_connection --callgrind

bench-translate: venv
	$(PY) -m bench.translate_cost

# The C# library (clients/dotnet) with Mono (apt-get install mono-devel nunit-console): its
# NUnit suite starts the simulator and the proxy from this checkout as processes.
csharp-test: venv
	clients/dotnet/build.sh
	DEVSTRAL_PYTHON=$(abspath $(PY)) DEVSTRAL_ROOT=$(CURDIR) nunit-console -nologo -noresult clients/dotnet/build/OpenAI.LocalAdapter.Tests.dll

csharp-sample: venv  # a few streamed turns of a text adventure, through the proxy to the simulator
	clients/dotnet/build.sh
	@$(PY) -m bench.simulator --port $(SIM_PORT) --token-delay 0.02 --tool-mode structured & sim=$$!; \
	$(PY) -m bench.wait --ready http://127.0.0.1:$(SIM_PORT)/health; \
	$(PY) -m devstral_proxy --upstream http://127.0.0.1:$(SIM_PORT) --port $(PORT) --map gpt-4=mistral-sim --log-level WARNING & proxy=$$!; \
	trap "kill $$sim $$proxy 2>/dev/null" EXIT INT TERM; \
	$(PY) -m bench.wait --ready http://127.0.0.1:$(PORT)/health && mono clients/dotnet/build/TextAdventure.exe http://127.0.0.1:$(PORT) gpt-4

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .agents

bench-versus: venv  # end to end against an earlier commit (REF), nginx beside: prints now / REF (needs nginx, wrk)
	$(PY) -m bench.versus --ref $(or $(REF),54164b8)
