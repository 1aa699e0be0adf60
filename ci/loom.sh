#!/usr/bin/env bash
# Model-checks with loom the shm ring's index and sleep/wake protocols
# (crates/mpmt/tests/loom_ring.rs) and the sync primitives: semaphore, ticket lock, robust
# mutex, spin lock, CAS counter, MPMC queue (crates/mpmt/tests/loom_sync.rs).
#
# Runtime: about 1 minute from clean on a 2-vCPU VM (mostly compiling the crate and its
# dependencies under --cfg loom, in their own target dir); the models themselves take
# a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="--cfg loom"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
# A separate target dir, so the loom build does not invalidate the normal one.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/loom}"
cargo test --release -p mpmt --test loom_ring --test loom_sync "$@"
