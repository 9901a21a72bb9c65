#!/usr/bin/env bash
# End-to-end test on a real Kubernetes cluster (kind), for people with docker, kind, kubectl and
# helm. Creates a cluster, builds and loads the image, installs the chart, applies the example
# Tier/Cluster/Mount resources from examples/ (the Mount's UFS is a MinIO bucket it creates),
# runs a Job that reads the mount through its PVC and checks a checksum, then tears it all down.
#
#   e2e/kind/run.sh                 # everything, then delete the kind cluster
#   KEEP=1 e2e/kind/run.sh          # leave the cluster running for a look around
#   SKIP_BUILD=1 e2e/kind/run.sh    # reuse an image already built as $IMAGE
#
# Needs network access to pull minio/minio, minio/mc and the CSI sidecar images.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLUSTER="${KIND_CLUSTER:-alluvium-e2e}"
IMAGE="${IMAGE:-alluvium/alluvium:e2e}"
NS_SYSTEM=alluvium-system
NS=alluvium-e2e
TIMEOUT="${TIMEOUT:-600s}"

log() { printf '\n==> %s\n' "$*"; }
need() { command -v "$1" >/dev/null || { echo "e2e/kind: '$1' is required" >&2; exit 2; }; }
for tool in docker kind kubectl helm sha256sum; do need "$tool"; done

dump() {
  # On failure, show what the operator and the resources say.
  log "diagnostics"
  kubectl get atier,acluster,amount -A -o wide || true
  kubectl describe acluster -n "$NS" || true
  kubectl describe amount -n "$NS" || true
  kubectl get pods -A -o wide || true
  kubectl logs -n "$NS_SYSTEM" deploy/alluvium-operator --tail=200 || true
  kubectl logs -n "$NS" job/read-datasets --tail=50 || true
}
cleanup() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then dump; fi
  if [ "${KEEP:-0}" = 1 ]; then
    log "KEEP=1: cluster '$CLUSTER' left running (kind delete cluster --name $CLUSTER)"
  else
    log "deleting kind cluster $CLUSTER"
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
  exit "$rc"
}
trap cleanup EXIT

log "creating kind cluster $CLUSTER"
kind get clusters 2>/dev/null | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --wait 120s
kubectl config use-context "kind-$CLUSTER" >/dev/null

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  log "building $IMAGE"
  docker build -t "$IMAGE" "$REPO"
fi
log "loading $IMAGE into kind"
kind load docker-image "$IMAGE" --name "$CLUSTER"

log "installing the chart"
helm upgrade --install alluvium "$REPO/charts/alluvium" \
  --namespace "$NS_SYSTEM" --create-namespace \
  --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" --set image.pullPolicy=Never \
  --set storageClass.master="demo-master.$NS.svc:19998" \
  --wait --timeout "$TIMEOUT"
kubectl get crd tiers.alluvium.io clusters.alluvium.io mounts.alluvium.io >/dev/null

log "starting MinIO with a bucket holding hello.txt and its checksum"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -n "$NS" -f - <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: {name: minio}
spec:
  selector: {matchLabels: {app: minio}}
  template:
    metadata: {labels: {app: minio}}
    spec:
      containers:
        - name: minio
          image: minio/minio:latest
          args: [server, /data]
          env:
            - {name: MINIO_ROOT_USER, value: minioadmin}
            - {name: MINIO_ROOT_PASSWORD, value: minioadmin}
          ports: [{containerPort: 9000}]
          readinessProbe: {httpGet: {path: /minio/health/ready, port: 9000}}
---
apiVersion: v1
kind: Service
metadata: {name: minio}
spec:
  selector: {app: minio}
  ports: [{port: 9000, targetPort: 9000}]
YAML
kubectl rollout status -n "$NS" deploy/minio --timeout "$TIMEOUT"
kubectl delete job -n "$NS" seed --ignore-not-found
kubectl apply -n "$NS" -f - <<'YAML'
apiVersion: batch/v1
kind: Job
metadata: {name: seed}
spec:
  backoffLimit: 3
  template:
    spec:
      restartPolicy: OnFailure
      containers:
        - name: mc
          image: minio/mc:latest
          command: [sh, -ec]
          args:
            - |
              mc alias set e2e http://minio:9000 minioadmin minioadmin
              mc mb --ignore-existing e2e/datasets
              head -c 8388608 /dev/urandom > /tmp/hello.txt
              (cd /tmp && sha256sum hello.txt > hello.txt.sha256)
              mc cp /tmp/hello.txt /tmp/hello.txt.sha256 e2e/datasets/
YAML
kubectl wait -n "$NS" --for=condition=complete job/seed --timeout "$TIMEOUT"

log "applying the example Tier, Cluster and Mount"
# A kind node's /dev/shm is Docker's default 64MiB: shrink the MEM tier to fit it (the operator
# would otherwise size worker pods for 1Gi of tmpfs the node cannot hold).
kubectl apply -f "$REPO/examples/tiers.yaml"
kubectl patch tiers.alluvium.io mem --type merge -p '{"spec":{"quota":"32Mi"}}'
sed -e "s#image: alluvium/alluvium:.*#image: $IMAGE\n  imagePullPolicy: Never#" \
  "$REPO/examples/cluster.yaml" | kubectl apply -n "$NS" -f -
kubectl apply -n "$NS" -f "$REPO/examples/mount.yaml"

log "waiting for the cluster to run"
kubectl wait -n "$NS" --for=jsonpath='{.status.phase}'=Running acluster/demo --timeout "$TIMEOUT"
kubectl get -n "$NS" acluster demo
log "waiting for the mount to be preloaded"
kubectl wait -n "$NS" --for=jsonpath='{.status.phase}'=Ready amount/datasets --timeout "$TIMEOUT"
kubectl get -n "$NS" amount datasets
kubectl get -n "$NS" pvc datasets

log "reading the mount through its PVC"
kubectl delete job -n "$NS" read-datasets --ignore-not-found
sed -e "s#image: alluvium/alluvium:.*#image: $IMAGE\n          imagePullPolicy: Never#" \
  "$REPO/examples/job.yaml" | kubectl apply -n "$NS" -f -
kubectl wait -n "$NS" --for=condition=complete job/read-datasets --timeout "$TIMEOUT"
kubectl logs -n "$NS" job/read-datasets

log "deleting the Mount (the finalizer unmounts it)"
kubectl delete -n "$NS" amount datasets --timeout 120s
kubectl delete -n "$NS" acluster demo --timeout 120s

log "e2e passed"
