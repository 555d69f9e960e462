#!/bin/sh
# One shard of a detbench run in a Kubernetes Indexed Job (job.yaml mounts this file from a
# ConfigMap, kustomization.yaml makes it): Kubernetes sets JOB_COMPLETION_INDEX, the Job sets
# DETBENCH_SHARD_COUNT to its spec.completions, and `detbench run --shard auto` takes shard
# JOB_COMPLETION_INDEX of DETBENCH_SHARD_COUNT. The shard goes to
# $DETBENCH_RESULTS/shard-<index>/shard.json (a volume every pod of the Job shares); merge them
# with `detbench merge $DETBENCH_RESULTS --out ...` (docs/CLUSTER.md).
# Arguments are `detbench run`'s. scripts/cluster-test.sh runs this very file.
set -eu
: "${JOB_COMPLETION_INDEX:?Kubernetes sets it in an Indexed Job (completionMode: Indexed)}"
: "${DETBENCH_SHARD_COUNT:?set it to the Job's spec.completions}"
results="${DETBENCH_RESULTS:-/results/detbench}"
echo "detbench shard $JOB_COMPLETION_INDEX of $DETBENCH_SHARD_COUNT on $(hostname)" >&2
exec "${DETBENCH:-detbench}" run --shard auto --out "$results/shard-$JOB_COMPLETION_INDEX" "$@"
