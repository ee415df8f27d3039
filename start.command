#!/bin/bash
# macOS: double-click in Finder (the first time: right-click → Open, because of the download quarantine).
cd "$(dirname "$0")" && exec ./start.sh "$@"
