# hmac-chat: `make help` lists the targets.
CARGO ?= cargo
# Extra arguments for `make server` / `make client` / `make bench`, e.g. ARGS="--port 6000".
ARGS ?=

# Debian/Ubuntu packages: the C++ toolchain and X11/OpenGL headers that the
# FLTK build needs, then Xvfb, xdotool and ImageMagick for the GUI test,
# python3 for the Python reference client's test, and tshark for the
# Wireshark dissector's test (its debconf question, "may non-superusers
# capture packets?", takes its default, no, without asking).
DEB_PACKAGES := cmake g++ make libx11-dev libxext-dev libxft-dev libxinerama-dev \
	libxcursor-dev libxrender-dev libxfixes-dev libpango1.0-dev libgl1-mesa-dev \
	libglu1-mesa-dev xvfb xdotool imagemagick python3 tshark

.PHONY: help build server client test lint key bench deps ci clean

help: ## List the targets.
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 10
	@echo
	@echo "The first 'make client' or 'make test' compiles FLTK (C++): about a minute, with"
	@echo "cargo's progress shown; later runs start in seconds."

build: deps ## Build everything (debug).
	$(CARGO) build --workspace

server: ## Run the server on 127.0.0.1:5555 (needs only cargo).
	$(CARGO) run --release -q -p chat-server -- $(ARGS)

client: deps ## Run the desktop client (the first build takes about a minute).
	$(CARGO) run --release -p chat-client -- $(ARGS)

test: deps ## Run every test (installs what the GUI test needs if missing).
	$(CARGO) test --workspace

lint: ## rustfmt check, then clippy with warnings as errors.
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

key: ## Create chat.key (32 random bytes as hex, mode 0600); never overwrites.
	@if [ -e chat.key ]; then echo "chat.key: already exists; not overwriting a key" >&2; exit 2; fi
	@umask 077 && od -An -vtx1 -N32 /dev/urandom | tr -d ' \n' > chat.key && echo >> chat.key
	@echo "wrote chat.key; give a copy to everyone who may chat, by a safe channel"

bench: ## Load-test release builds on 127.0.0.1 (about two minutes; ARGS="--quick" for less).
	@CARGO="$(CARGO)" scripts/bench.sh $(ARGS)

deps: ## Install the Debian/Ubuntu packages above; elsewhere, list what to install.
	@if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-query >/dev/null 2>&1; then \
		echo "deps: no apt-get here, so nothing is installed automatically. The window needs"; \
		echo "  a C++ compiler, cmake, and the X11, Xft, Pango and OpenGL headers; the GUI test"; \
		echo "  needs Xvfb, xdotool and ImageMagick; the Python test needs python3. Their names:"; \
		echo "  Debian/Ubuntu: $(DEB_PACKAGES)"; \
		echo "  Fedora:  sudo dnf install cmake gcc-c++ make libX11-devel libXext-devel libXft-devel"; \
		echo "           libXinerama-devel libXcursor-devel libXrender-devel libXfixes-devel pango-devel"; \
		echo "           mesa-libGL-devel mesa-libGLU-devel xorg-x11-server-Xvfb xdotool ImageMagick python3"; \
		echo "  macOS:   xcode-select --install; brew install cmake python (the window needs no X11;"; \
		echo "           the GUI test does, so run it on Linux)"; \
		echo "  Windows: use WSL2 with Ubuntu, where 'make deps' works as on Ubuntu."; \
		echo "  Without any of these: cargo build -p chat-client --no-default-features (headless only)."; \
		exit 0; \
	fi; \
	missing=$$(for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	echo "deps: installing" $$missing; \
	sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing

ci: lint test ## What CI runs: lint, then the tests.

clean: ## Remove build output.
	$(CARGO) clean
