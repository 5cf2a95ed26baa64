#!/bin/bash
# Double-click in Finder to install the LKJam control surface into Ableton Live's
# User Library (~/Music/Ableton/User Library/Remote Scripts). Same as `lkjam install`.
# Extra arguments (e.g. --uninstall or --dest PATH) are passed through from a terminal.
cd "$(dirname "$0")" || exit 1
if command -v python3 >/dev/null 2>&1; then
  python3 ./install.py "$@"
  status=$?
else
  echo "Python 3 was not found. Install it (https://www.python.org or 'xcode-select --install')"
  echo "and double-click this file again."
  status=1
fi
echo
read -r -p "Press Return to close this window." _
exit $status
