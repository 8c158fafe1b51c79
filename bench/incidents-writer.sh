#!/usr/bin/env bash
# The incident writer's sustained rate, end to end: Recorder -> bounded
# channel -> writer thread -> SQLite (WAL, batched) with grouping on, for an
# attack mix of event kinds over two sites (1,000,000 events by default).
# Printed next to its peer from the same run: raw SQLite inserts of the same
# rows through Store::insert_batch, with no channel and no grouping, and the
# ratio. Target: at least 50,000 events/s.
#
# The figure depends on the disk: under a flood the client index takes
# inserts at random places, so the store writes a few KiB per event.
#
# Usage: bench/incidents-writer.sh [events]
set -euo pipefail
events=${1:-1000000}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo run --release -q -p rampart-incidents --example writer_bench -- "$events"
