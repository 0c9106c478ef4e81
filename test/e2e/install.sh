#!/usr/bin/env bash
# Installs what the end-to-end tests against real upstream programs need.
# Nothing yet beyond Go: the tour test runs the built binary only.
set -euo pipefail
exit 0
