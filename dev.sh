#!/usr/bin/env bash
# dev.sh: the two set-up commands of the README.
#   ./dev.sh start   install what is missing, build, serve on 127.0.0.1:8080
#                    (lighttpd + FastCGI workers + lmstream-live, demo page at /,
#                    fed by deploy/demo-producer)
#   ./dev.sh test    install what the tests need, build, run every test suite
# Both work on a fresh Debian 12 machine; they use sudo when not run as root.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
cd "$root"
say() { printf 'dev.sh: %s\n' "$*" >&2; }

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

BUILD_PKGS="build-essential autoconf automake pkg-config liblmdb-dev libfcgi-dev
	libmicrohttpd-dev libcjson-dev libjwt-dev libssl-dev libcurl4-openssl-dev openssl curl"
RUN_PKGS="lighttpd lighttpd-modules-lua"
TEST_PKGS="apache2 libapache2-mod-fcgid valgrind chromium lmdb-utils psmisc procps strace
	lighttpd-mod-openssl mandoc dpkg-dev debhelper lintian prometheus wrk haproxy varnish iproute2"

# apt_install PKG...: installs the packages that are not installed yet.
apt_install() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	say "installing: ${missing[*]}"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Node.js 20 or newer runs the JavaScript test tools (vitest 4, playwright).
need_node() {
	if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
		apt_install nodejs npm
	fi
	local major
	major=$(node -p 'process.versions.node.split(".")[0]')
	if [ "$major" -lt 20 ]; then
		say "Node.js $(node --version) is too old for the test tools: Node.js 20 or newer is needed"
		exit 1
	fi
}

# Configures and builds out of tree in build/default (and build/asan with
# AddressSanitizer and UndefinedBehaviorSanitizer when asked).
build() {
	local dir=build/$1
	shift
	if [ -f config.status ]; then
		say "the source tree was configured in place; cleaning it for out-of-tree builds"
		make distclean >/dev/null
	fi
	[ -x configure ] || autoreconf -fi
	mkdir -p "$dir"
	if [ ! -f "$dir/config.status" ]; then
		(cd "$dir" && "$root/configure" -q "$@")
	fi
	make -s -C "$dir" -j"$(nproc)"
}

cmd=${1:-}
case $cmd in
start)
	shift
	apt_install $BUILD_PKGS $RUN_PKGS
	build default
	export LMSTREAM_BINDIR=$root/build/default/src
	exec deploy/run --server lighttpd --port 8080 --data "$root/data" --demo "$@"
	;;
test)
	shift
	apt_install $BUILD_PKGS $RUN_PKGS $TEST_PKGS
	need_node
	build default
	build asan --enable-sanitizers
	# the folders the shared-hosting tests upload (the sanitized stage uses build/asan's)
	make -s -C build/default shared-hosting
	make -s -C build/asan shared-hosting
	(cd tests && npm ci --no-audit --no-fund --loglevel=error)
	export LMSTREAM_BINDIR=$root/build/default/src
	exec tests/run-all "$@"
	;;
*)
	echo "usage: ./dev.sh start | test" >&2
	exit 2
	;;
esac
