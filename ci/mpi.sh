#!/usr/bin/env bash
# The cluster model (feature `mpi`) under mpirun on this machine: 4 ranks on localhost (rank 0
# the pool front, 3 node supervisors), once over shared memory and once forcing the TCP path.
#
#   ci/mpi.sh            install Open MPI when missing (apt, as root), lint, test
#   ci/mpi.sh --no-apt   use what is installed; skip when MPI is missing
#
# Without MPI, and without root or apt to install it, it says so and exits 0: the default
# build and `cargo test` need no MPI library. Budget on 2 cores: ~40 s to install, ~1-2 min
# to build the feature, ~2 min of MPI jobs (most of it 100 injected hangs waiting out their
# timeout, twice), then ci/ulfm.sh (~2-3 min: pip, a second build, one MPI job).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(libopenmpi-dev openmpi-bin libclang-dev clang)

have_mpi() {
    command -v mpirun >/dev/null && command -v mpicc >/dev/null \
        && { ! command -v dpkg >/dev/null || dpkg -s "${PACKAGES[@]}" >/dev/null 2>&1; }
}

install_mpi() {
    have_mpi && return 0
    if [ "${1:-}" = "--no-apt" ]; then
        echo "mpi: Open MPI is not installed and --no-apt was given: the cluster tests are skipped"
        return 1
    fi
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        echo "mpi: Open MPI is not installed and this is not root with apt-get: the cluster" \
            "tests are skipped (apt-get install ${PACKAGES[*]} to run them)"
        return 1
    fi
    echo "== installing ${PACKAGES[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${PACKAGES[@]}" >/dev/null
}

install_mpi "${1:-}" || exit 0

# mpirun refuses root without these; on few cores, ranks that busy-poll must yield.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
SHM="--oversubscribe"
TCP="--oversubscribe --mca pml ob1 --mca btl self,tcp"

echo "== cargo clippy --features mpi"
cargo clippy -p mpmt -p mpmt-cli --all-targets --features mpi -- -D warnings

echo "== cargo build -p mpmt-cli --features mpi; the cluster wire format's unit tests"
cargo build -p mpmt-cli --features mpi
cargo test -q -p mpmt --features mpi --lib cluster
MPMT=target/debug/mpmt

# One outcome per task, none lost, the injected segfaults (and only they) Crashed, exit 0.
check_run() {
    python3 - "$1" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
crashed = r["errors"].get("crashed", 0)
assert r["lost"] == 0, f"lost {r['lost']}"
assert r["ok"] + sum(r["errors"].values()) == r["count"], r
assert r["errors"] == ({"crashed": crashed} if crashed else {}), r["errors"]
assert crashed == r["injected"] > 0, r
print(f"   ok {r['ok']}, errors {r['errors']}, lost {r['lost']}, {r['tasks_per_s']:.0f} tasks/s")
EOF
}

for path in shm tcp; do
    if [ "$path" = shm ]; then args=$SHM; else args=$TCP; fi
    echo "== cluster tests over $path: mpirun $args -n 4"
    MPMT_MPIRUN=mpirun MPMT_MPIRUN_ARGS="$args" \
        cargo test -q -p mpmt --features mpi --test cluster_mpi
    echo "== mpmt run --model cluster over $path (segfaults injected; exit code 0)"
    # shellcheck disable=SC2086
    timeout 300 mpirun $args -n 4 "$MPMT" run --model cluster --threads-per-node 2 \
        --task sha256 --size 4096 --count 3000 --inject segfault:0.01 --json >target/mpi-run.json
    check_run target/mpi-run.json
done

# MPI ping-pong rows beside the local transports: rank 0 measures, rank 1 echoes.
check_ipc() {
    python3 - "$1" "$2" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
want = sys.argv[2]
m = r["mpi"]
assert m["measured"] and m["endpoint"] == want and m["ranks"] == 2, m
for size in r["sizes"]:
    names = [e["name"] for e in size["endpoints"]]
    assert names[-1] == want and "shm" in names, names
    e = size["endpoints"][-1]
    assert e["role"] == "transport" and e["wake"] == "poll" and e["baseline"] == "thread-spinning", e
    assert e["round_trip"]["summary"]["n"] >= 5 and e["throughput"]["messages_per_s"] > 0, e
    shm = size["endpoints"][names.index("shm")]["round_trip"]["summary"]["median"]
    print(f"   {size['size_bytes']:>7} B: {want} round trip p50 "
          f"{e['round_trip']['summary']['median'] * 1e6:.2f} µs, shm {shm * 1e6:.2f} µs")
EOF
}

for path in shm tcp; do
    if [ "$path" = shm ]; then args=$SHM; else args=$TCP; fi
    echo "== mpmt ipc under mpirun -n 2 over $path: the mpi-$path rows"
    # shellcheck disable=SC2086
    timeout 120 mpirun $args --bind-to none -n 2 "$MPMT" ipc --quick --sizes 64,4KiB --transports pipe,shm \
        --json >target/mpi-ipc.json
    check_ipc target/mpi-ipc.json "mpi-$path"
done
echo "== mpmt ipc without mpirun says why MPI was not measured"
"$MPMT" ipc --quick --sizes 64 --transports pipe | grep -q "^mpi: MPI not measured: not started"

echo "== a node rank that dies ends the job, named by rank and host (no ULFM in Open MPI 4)"
log=target/mpi-dead-node.log
# shellcheck disable=SC2086
timeout 120 mpirun $SHM -n 3 "$MPMT" run --model cluster --threads-per-node 1 --task sleep \
    --size 2000 --count 1000000 >"$log" 2>&1 &
job=$!
node=""
for _ in $(seq 300); do
    # The ranks are mpirun's children (mpirun is timeout's); their workers are not.
    for pid in $(pgrep -P "$(pgrep -P "$job" -x mpirun || echo 0)" || true); do
        if grep -qz '^OMPI_COMM_WORLD_RANK=2$' "/proc/$pid/environ" 2>/dev/null; then node=$pid; fi
    done
    [ -n "$node" ] && break
    sleep 0.1
done
[ -n "$node" ] || { echo "node rank 2 never started"; kill "$job"; exit 1; }
sleep 1
kill -KILL "$node"
rc=0
wait "$job" || rc=$?
host=$(hostname)
if [ "$rc" = 0 ] || [ "$rc" = 124 ] || ! grep -q "rank 2 .* on node ${host%%.*}" "$log"; then
    echo "expected the job to end (rc $rc) with a message naming rank 2 on ${host%%.*}:"
    cat "$log"
    exit 1
fi
echo "   job ended with rc $rc: $(grep -m1 "rank 2 .* on node" "$log" | sed 's/^ *//')"

# The same death survived: Open MPI 5 with ULFM from PyPI, the `ulfm` feature (skipped with a
# message when pip cannot install the wheel).
echo "== a node rank that dies, survived with ULFM (ci/ulfm.sh)"
ci/ulfm.sh
