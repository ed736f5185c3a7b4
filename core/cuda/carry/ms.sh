#!/bin/sh
# metastate with the libraries carried beside it (a device machine without them)
d=$(cd "$(dirname "$0")" && pwd)
LD_LIBRARY_PATH="/tmp/mslib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$d/metastate" "$@"
