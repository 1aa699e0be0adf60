#!/usr/bin/env bash
# Opens mpmt's HTML report in a real browser (headless Chromium) and checks that it renders
# with no console error and makes no network request, and takes a screenshot of it.
#
# Pages checked: the renderer's snapshot of the synthetic report (every kind of chart;
# crates/mpmt-lab/tests/snapshots/index.html) and a real report, `mpmt lab --quick --only
# create,switch --lang ko`. For each:
#   1. static: the Content-Security-Policy meta tag `default-src 'none'` is there, and the
#      page holds no URL, `src=`, `href=`, `url(` or `@import` (so it asks for nothing);
#   2. Chromium loads it (--headless --no-sandbox) with its console on stderr: any console
#      message fails (a blocked load under the CSP is reported there as an error);
#   3. Chromium's network log (--log-net-log): any request whose network isolation key is
#      the page's (file://) for a URL other than a file fails. The browser's own background
#      requests (component updates and the like) carry no such key and are not the page's;
#   4. the DOM Chromium built has every <svg> of the file, and the screenshot is a PNG.
# Screenshots and logs go to target/browser/ (or $BROWSER_OUT). `ci/browser.sh PAGE…` checks
# the pages given instead (e.g. a full report: mpmt-report/index.html).
#
# Needs chromium, a Korean font (the report's `--lang ko` table) and python3. When chromium
# or the font is missing, they are installed with apt (`apt-get install
# --no-install-recommends chromium fonts-dejavu-core fonts-nanum`: 16 s on the project's
# 2-vCPU VM, plus `apt-get update`) if this runs as root with apt; otherwise the check is
# skipped with a message and exit 0. The whole script takes about 20 s once installed.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${BROWSER_OUT:-target/browser}"

korean_font() { command -v fc-list >/dev/null && [ -n "$(fc-list :lang=ko)" ]; }
if ! command -v chromium >/dev/null || ! korean_font; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing chromium, fonts-dejavu-core and fonts-nanum (Korean) with apt"
        if ! { apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                chromium fonts-dejavu-core fonts-nanum >/dev/null; }; then
            echo "browser check skipped: apt-get could not install chromium (no network or" \
                "no package lists?); install chromium, fonts-dejavu-core and fonts-nanum"
            exit 0
        fi
    else
        echo "browser check skipped: chromium or a Korean font is missing and cannot be" \
            "installed here (needs root and apt-get); install chromium, fonts-dejavu-core" \
            "and fonts-nanum to run it"
        exit 0
    fi
fi
if ! command -v python3 >/dev/null; then
    echo "browser check skipped: python3 not found (it reads Chromium's network log)"
    exit 0
fi

mkdir -p "$out"
names=()
if [ "$#" -gt 0 ]; then
    # Pages given on the command line (e.g. mpmt-report/index.html) are checked instead.
    for page in "$@"; do
        names+=("page${#names[@]}")
        cp "$page" "$out/${names[-1]}.html"
    done
else
    cp crates/mpmt-lab/tests/snapshots/index.html "$out/synthetic.html"
    cargo build -q -p mpmt-cli
    target/debug/mpmt lab --quick --only create,switch --lang ko --quiet --out "$out/real" >/dev/null
    cp "$out/real/index.html" "$out/real.html"
    names=(synthetic real)
fi

chrome() {
    local profile
    profile="$(mktemp -d)"
    timeout 120 chromium --headless --no-sandbox --disable-gpu --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$profile" --enable-logging=stderr --v=0 "$@"
    rm -rf "$profile"
}

failed=0
for name in "${names[@]}"; do
    page="$out/$name.html"
    url="file://$(realpath "$page")"
    echo "== $page"
    before=$failed
    failed=0
    if ! grep -q "http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'" "$page"; then
        echo "FAIL: no Content-Security-Policy of default-src 'none'"
        failed=1
    fi
    if grep -noE "https?:|src=|href=|url\(|@import" "$page"; then
        echo "FAIL: the page refers to something outside itself (above)"
        failed=1
    fi
    chrome --window-size=1280,4000 --screenshot="$out/$name.png" \
        --log-net-log="$out/$name.netlog.json" "$url" 2>"$out/$name.log" >/dev/null || true
    chrome --dump-dom "$url" 2>"$out/$name.dom.log" >"$out/$name.dom.html" || true
    if grep -h "CONSOLE" "$out/$name.log" "$out/$name.dom.log"; then
        echo "FAIL: console messages (above)"
        failed=1
    fi
    if ! head -c 8 "$out/$name.png" 2>/dev/null | grep -q "PNG"; then
        echo "FAIL: no screenshot"
        failed=1
    fi
    svg_file=$(grep -o "<svg" "$page" | wc -l)
    svg_dom=$(grep -o "<svg" "$out/$name.dom.html" | wc -l)
    if [ "$svg_file" -eq 0 ] || [ "$svg_file" != "$svg_dom" ]; then
        echo "FAIL: $svg_file charts in the file, $svg_dom in the DOM Chromium built"
        failed=1
    fi
    if ! python3 - "$out/$name.netlog.json" <<'EOF'
import json, sys
log = json.load(open(sys.argv[1]))
types = {v: k for k, v in log["constants"]["logEventTypes"].items()}
page = set()
for e in log["events"]:
    p = e.get("params", {})
    if types.get(e["type"]) == "URL_REQUEST_START_JOB" and "file://" in p.get("network_isolation_key", ""):
        if not p.get("url", "").startswith("file://"):
            page.add(p["url"])
for url in sorted(page):
    print("FAIL: the page requested", url)
sys.exit(1 if page else 0)
EOF
    then
        failed=1
    fi
    if [ "$failed" = 0 ]; then
        echo "   ok: $svg_dom charts rendered, no console message, no network request;" \
            "screenshot $out/$name.png"
    fi
    failed=$((failed | before))
done
exit "$failed"
