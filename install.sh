#!/usr/bin/env bash
# Build git-teleos and install the binary and its man page.
#   ./install.sh [--prefix DIR]      install into DIR (default ~/.local)
#   ./install.sh --uninstall [--prefix DIR]
# Rerunnable: an install over an earlier one replaces exactly the same two files.
set -euo pipefail

prefix="${HOME}/.local"
uninstall=0
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || { echo "error: --prefix needs a directory" >&2; exit 2; }
              prefix="$2"; shift 2 ;;
    --prefix=*) prefix="${1#--prefix=}"; shift ;;
    --uninstall) uninstall=1; shift ;;
    -h|--help) sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown option '$1'" >&2
       echo "hint: usage: ./install.sh [--prefix DIR] [--uninstall]" >&2; exit 2 ;;
  esac
done

bin="$prefix/bin/git-teleos"
man="$prefix/share/man/man1/git-teleos.1"

if [ "$uninstall" = 1 ]; then
  for f in "$bin" "$man"; do
    if [ -e "$f" ]; then rm -f -- "$f"; echo "removed $f"; fi
  done
  exit 0
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found on PATH" >&2
  echo "hint: install the Rust toolchain (https://rustup.rs), then rerun ./install.sh" >&2
  exit 2
fi

echo "building git-teleos (release)…" >&2
cargo build --release --locked --manifest-path "$here/Cargo.toml" >&2
# Ask cargo where it built (CARGO_TARGET_DIR or build.target-dir may move it).
target_dir="$(cargo metadata --format-version 1 --no-deps --manifest-path "$here/Cargo.toml" 2>/dev/null \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
[ -n "$target_dir" ] || target_dir="$here/target"

install -d "$prefix/bin" "$prefix/share/man/man1"
# Copy then rename so a running git-teleos is never overwritten in place.
install -m 0755 "$target_dir/release/git-teleos" "$bin.tmp.$$" && mv -f "$bin.tmp.$$" "$bin"
install -m 0644 "$here/man/git-teleos.1" "$man"
echo "installed $bin"
echo "installed $man"

case ":${PATH}:" in
  *":$prefix/bin:"*) ;;
  *) echo "note: add $prefix/bin to PATH, e.g.: export PATH=\"$prefix/bin:\$PATH\"" ;;
esac
if command -v manpath >/dev/null 2>&1; then
  case ":$(manpath 2>/dev/null):" in
    *":$prefix/share/man:"*) ;;
    *) echo "note: for 'git teleos --help', add the man page folder: export MANPATH=\"$prefix/share/man:\$MANPATH\"" ;;
  esac
fi
echo "try: git teleos --version"
