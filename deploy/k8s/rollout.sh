#!/usr/bin/env bash
# Deploys an overlay with the schema migrated before any new pod starts:
#   deploy/k8s/rollout.sh deploy/k8s/overlays/production
# Kustomize has no hooks, so the order is this script's: (1) configuration, database and
# monitoring objects; (2) the migrations Job, alone, waited for; (3) the API and the worker,
# waited for. A failed migration stops at (2): the running release keeps serving. kubectl and a
# context on the target cluster are the only requirements; Argo CD users get the same order from
# the Job's PreSync hook annotations instead.
set -Eeuo pipefail

overlay=${1:?usage: $0 OVERLAY_DIR}
timeout=${ROLLOUT_TIMEOUT:-15m}
job=saas-backend-migrate
namespace=$(sed -n 's/^namespace: *//p' "$overlay/kustomization.yaml")
: "${namespace:?$overlay/kustomization.yaml sets no namespace}"

rendered=$(mktemp)
trap 'rm -f "$rendered"' EXIT
kubectl kustomize "$overlay" >"$rendered"
apply() { kubectl apply --server-side --force-conflicts -f "$rendered" -l "$1"; }

# (1) Everything the Job reads, and the database it migrates.
apply 'app.kubernetes.io/component in (config, database, monitoring)'
kubectl -n "$namespace" wait cluster/saas-db --for=condition=Ready --timeout="$timeout"

# (2) A Job's pod template is immutable: the previous release's Job goes before this one is made.
kubectl -n "$namespace" delete job "$job" --ignore-not-found --wait=true
apply 'app.kubernetes.io/component=migrations'
kubectl -n "$namespace" wait "job/$job" --for=condition=Complete --timeout="$timeout"

# (3) The new release; /readyz keeps each new pod out of the Service until it is ready.
apply 'app.kubernetes.io/component in (api, worker)'
kubectl -n "$namespace" rollout status deployment/saas-backend --timeout="$timeout"
kubectl -n "$namespace" rollout status deployment/saas-backend-worker --timeout="$timeout"
