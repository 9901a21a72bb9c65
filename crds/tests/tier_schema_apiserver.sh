#!/usr/bin/env bash
# The Tier CRD's schema on a real API server: what `kubectl apply` accepts and refuses, and that
# installing the CRDs draws no "unrecognized format" warning. Not run by `cargo test` (it needs an
# API server): run it by hand or from CI with the kit in ../shared/k8s up, e.g.
#   eval "$(../shared/k8s/env)"; bash crds/tests/tier_schema_apiserver.sh
# It installs a copy of the Tier CRD under a throwaway group, so the cluster's own alluvium.io
# CRDs (and whoever uses them) are left alone, and deletes it at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."

# Overridable, e.g. to see an older schema fail: ALL_CRDS=old-all.yaml TIER_CRD=old-tiers.yaml.
all_crds="${ALL_CRDS:-crds/generated/all.yaml}"
tier_crd="${TIER_CRD:-crds/generated/tiers.alluvium.io.yaml}"
group="schematest$$.alluvium.io"
crd="tiers.$group"
work="$(mktemp -d)"
trap 'kubectl delete crd "$crd" --ignore-not-found >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

# 1. No warning when the generated CRDs are created (server-side dry run: nothing changes). Under
# the throwaway group, so it is a create even where the real CRDs are installed: an update warns
# only about formats the stored object does not already have.
warnings="$(sed -e "s/^  name: \(.*\)\.alluvium\.io$/  name: \1.$group/" \
                -e "s/^  group: alluvium.io$/  group: $group/" "$all_crds" |
            kubectl create --dry-run=server -f - 2>&1 >/dev/null || true)"
if grep -qi "format" <<<"$warnings"; then
  echo "FAIL: the API server warns about the CRD schemas: $warnings" >&2
  fails_format=1
fi
[[ -z "${fails_format:-}" ]] && echo "ok: no format warning from the API server"

# 2. The Tier schema, under a private group (no short names: they must be unique).
sed -e "s/^  name: tiers.alluvium.io$/  name: $crd/" \
    -e "s/^  group: alluvium.io$/  group: $group/" \
    -e '/^    shortNames:$/,+1d' -e '/^    categories:$/,+1d' \
    "$tier_crd" >"$work/crd.yaml"
kubectl apply -f "$work/crd.yaml" >/dev/null
kubectl wait --for=condition=Established "crd/$crd" --timeout=30s >/dev/null

fails=0
# expect NAME MEDIUM HOSTPATH QUOTA [EXTRA_SPEC_YAML]: accept|refuse
check() {
  local want="$1" name="$2" medium="$3" path="$4" quota="$5" extra="${6:-}"
  cat >"$work/t.yaml" <<YAML
apiVersion: $group/v1alpha1
kind: Tier
metadata: {name: $name}
spec:
  medium: $medium
  hostPath: "$path"
  quota: "$quota"
$extra
YAML
  local out got
  if out="$(kubectl apply --dry-run=server -f "$work/t.yaml" 2>&1)"; then got=accept; else got=refuse; fi
  if [[ "$got" != "$want" ]]; then
    echo "FAIL: $medium $path quota=$quota $extra: want $want, got $got: $out" >&2
    fails=$((fails + 1))
  else
    echo "ok: $want $medium $path quota=$quota $extra"
  fi
}

check accept mem       MEM /dev/shm/alluvium 1Gi
check accept mem2      MEM /dev/shm/alluvium/ 1.5Gi
check accept ssd       SSD /var/lib/alluvium/ssd 8G
check refuse shm-root  MEM /dev/shm/ 1Gi
check refuse shm-root2 MEM /dev/shm 1Gi
check refuse shm-dot   MEM /dev/shm/. 1Gi
check refuse not-shm   MEM /var/ram 1Gi
check refuse dotdot    SSD /mnt/../etc 1Gi
check refuse root      SSD // 1Gi
check refuse half      SSD /mnt/x 0.5
check refuse unitless  SSD /mnt/x 8
check refuse fraction  SSD /mnt/x 1.1Ki
check refuse zero      SSD /mnt/x 0Gi
check refuse gb        SSD /mnt/x 1GB
check accept halfki    SSD /mnt/x 0.5Ki
check refuse tinyfrac  SSD /mnt/x 1.0001Ki
check refuse lowzero   SSD /mnt/x 1Gi "  lowWatermark: 0"
check refuse inverted  SSD /mnt/x 1Gi "  lowWatermark: 0.9
  highWatermark: 0.8"

fails=$((fails + ${fails_format:-0}))
if ((fails > 0)); then
  echo "$fails case(s) failed" >&2
  exit 1
fi
echo "all cases pass"
