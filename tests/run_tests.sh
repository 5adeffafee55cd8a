#!/usr/bin/env bash
# The project's test command (README, .ci/run): install what the tests need, then run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check -e ".[test]"

# Real Fashion-MNIST comes from Debian's dataset-fashion-mnist; pip cannot install it.
if [ -z "${FASHION_MNIST_DIR:-}" ] && [ ! -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ]; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null
    else
        echo "note: Fashion-MNIST not installed (apt-get install dataset-fashion-mnist); its tests will skip" >&2
    fi
fi

export QT_QPA_PLATFORM=offscreen
exec python3 -m pytest "$@"
