#!/bin/sh
# Fails when an object file that must run before the C library starts (the CNI plugin's relay entry)
# references any symbol but `_start`, the C library's entry it hands over to: a call into libc, libstdc++ or
# a compiler-generated memcpy/memset there would run before the C library is initialised.
set -eu
status=0
for object in "$@"; do
  undefined=$(nm -u "$object" | awk '{print $NF}' | grep -v -x '_start' || true)
  if [ -n "$undefined" ]; then
    echo "$object references symbols it cannot use before the C library starts:" >&2
    echo "$undefined" >&2
    status=1
  fi
  if ! nm "$object" | grep -q ' T abode_cni_relay_entry$'; then
    case "$(uname -m)" in
      x86_64) echo "$object does not define abode_cni_relay_entry" >&2; status=1 ;;
    esac
  fi
done
exit $status
