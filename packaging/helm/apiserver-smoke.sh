#!/usr/bin/env bash
# Install, upgrade, scale and uninstall the chart on a real Kubernetes API server (etcd +
# kube-apiserver on 127.0.0.1, no nodes): the server's own validation and defaulting of every
# object, Helm's release lifecycle, and the objects as the API stores them. Pods are never
# scheduled (no kubelet, no container runtime), so no image is pulled and nothing runs.
#
#   packaging/helm/apiserver-smoke.sh
#
# Not part of CI: building kube-apiserver takes 10 minutes or more on two cores the first time.
# Needs: go 1.24+ and the Go module proxy (kube-apiserver from module k8s.io/kubernetes at the
# version of the vendored schemas), etcd (Debian: apt-get install etcd-server), kubectl, openssl,
# and helm from `scripts/services install`. Everything lives in a temporary folder; the servers
# it starts are stopped by their process ids when it ends.
set -euo pipefail
cd "$(dirname "$0")/../.."

schemas=$(ls -d packaging/helm/schemas/v*-standalone-strict)
version=$(basename "$schemas" -standalone-strict)           # v1.33.13
minor=$(echo "$version" | cut -d. -f2)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/millstream/tools"
helm_version=$(awk '$1 == "helm" {print $3}' packaging/helm/tools.txt)
helm="$cache/helm-$helm_version/helm"
apiserver="$cache/kube-apiserver-$version/kube-apiserver"
[ -x "$helm" ] || { echo "smoke: $helm is missing: run scripts/services install" >&2; exit 1; }
command -v etcd >/dev/null || { echo "smoke: etcd is missing: apt-get install etcd-server" >&2; exit 1; }
command -v kubectl >/dev/null || { echo "smoke: kubectl is missing" >&2; exit 1; }

if [ ! -x "$apiserver" ]; then
  # k8s.io/kubernetes cannot be `go install`ed (its go.mod replaces the k8s.io/* modules with
  # folders of its own repository): build it in a copy whose replacements name released modules.
  echo "smoke: building kube-apiserver $version (10 minutes or more the first time)"
  src=$(mktemp -d)
  dir=$(go mod download -json "k8s.io/kubernetes@$version" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  cp -r "$dir/." "$src"
  chmod -R u+w "$src"
  rm -rf "$src/vendor" "$src/go.work" "$src/go.work.sum"
  for module in $(grep -oE 'k8s.io/[a-z0-9-]+ => ./staging' "$src/go.mod" | awk '{print $1}'); do
    (cd "$src" && go mod edit -replace="$module=$module@v0.$minor.${version##*.}")
  done
  ld="-X k8s.io/component-base/version.gitVersion=$version"
  ld+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  mkdir -p "$(dirname "$apiserver")"
  (cd "$src" && GOWORK=off GOFLAGS=-mod=mod go build -trimpath -ldflags "$ld" \
    -o "$apiserver.partial" ./cmd/kube-apiserver)
  mv "$apiserver.partial" "$apiserver"
  rm -rf "$src"
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

etcd_port=$(port)
peer="http://127.0.0.1:$(port)"
etcd --data-dir "$work/etcd" --listen-client-urls "http://127.0.0.1:$etcd_port" \
  --advertise-client-urls "http://127.0.0.1:$etcd_port" --listen-peer-urls "$peer" \
  --initial-advertise-peer-urls "$peer" --initial-cluster "default=$peer" \
  >"$work/etcd.log" 2>&1 &
pids+=($!)
openssl genrsa -out "$work/sa.key" 2048 2>/dev/null
openssl rsa -in "$work/sa.key" -pubout -out "$work/sa.pub" 2>/dev/null
token=$(openssl rand -hex 16)
echo "$token,smoke,smoke,system:masters" > "$work/tokens.csv"
api_port=$(port)
"$apiserver" --etcd-servers="http://127.0.0.1:$etcd_port" --bind-address=127.0.0.1 \
  --advertise-address=127.0.0.1 --secure-port="$api_port" --cert-dir="$work/certs" \
  --token-auth-file="$work/tokens.csv" --authorization-mode=RBAC \
  --service-account-issuer=https://kubernetes.default.svc \
  --service-account-key-file="$work/sa.pub" --service-account-signing-key-file="$work/sa.key" \
  --service-cluster-ip-range=10.96.0.0/24 >"$work/apiserver.log" 2>&1 &
pids+=($!)
cat > "$work/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: smoke, cluster: {server: "https://127.0.0.1:$api_port", insecure-skip-tls-verify: true}}]
users: [{name: smoke, user: {token: "$token"}}]
contexts: [{name: smoke, context: {cluster: smoke, user: smoke}}]
current-context: smoke
EOF
export KUBECONFIG="$work/kubeconfig"
for _ in $(seq 120); do kubectl get --raw /readyz >/dev/null 2>&1 && break; sleep 1; done
kubectl get --raw /readyz >/dev/null || { tail -20 "$work/apiserver.log" >&2; exit 1; }
echo "smoke: API server $version ready on 127.0.0.1:$api_port"

ns=millstream
kubectl create namespace "$ns" >/dev/null
# The Secrets an operator creates beforehand (docs/kubernetes.md "Install"); throwaway values.
kubectl -n "$ns" create secret generic millstream-hub \
  --from-literal=mqtt-password="$(openssl rand -hex 24)" --from-literal=jwt-secret="$(openssl rand -hex 32)" >/dev/null
kubectl -n "$ns" create secret generic millstream-db-app --from-literal=password=x >/dev/null
kubectl -n "$ns" create secret generic millstream-redis --from-literal=redis-password=x >/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=mosquitto \
  -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
kubectl -n "$ns" create secret generic millstream-mqtt-tls --type kubernetes.io/tls \
  --from-file=tls.crt="$work/tls.crt" --from-file=tls.key="$work/tls.key" \
  --from-file=ca.crt="$work/tls.crt" >/dev/null

chart=packaging/helm/millstream
# Hooks are applied on their own: nothing would ever run the migrate Job here, and Helm waits for
# a hook Job to finish.
"$helm" install millstream "$chart" -n "$ns" --no-hooks
"$helm" template millstream "$chart" -n "$ns" --kube-version "$version" \
  --show-only templates/migrate-job.yaml \
  | kubectl -n "$ns" create -f -
kubectl -n "$ns" get statefulset,deployment,job,service,poddisruptionbudget,networkpolicy,configmap
replicas=$(kubectl -n "$ns" get statefulset millstream-hub -o jsonpath='{.spec.replicas}')
[ "$replicas" = 2 ] || { echo "smoke: hub replicas $replicas, expected 2" >&2; exit 1; }

# An upgrade as docs/kubernetes.md shows it: a new image, then more hub pods.
"$helm" upgrade millstream "$chart" -n "$ns" --no-hooks --reuse-values --set image.tag=0.2.0
image=$(kubectl -n "$ns" get statefulset millstream-hub -o jsonpath='{.spec.template.spec.containers[0].image}')
[ "$image" = millstream-hub:0.2.0 ] || { echo "smoke: hub image $image after the upgrade" >&2; exit 1; }
broker=$(kubectl -n "$ns" get statefulset millstream-mosquitto -o jsonpath='{.metadata.generation}')
[ "$broker" = 1 ] || { echo "smoke: the hub's upgrade changed the broker (generation $broker)" >&2; exit 1; }
"$helm" upgrade millstream "$chart" -n "$ns" --no-hooks --reuse-values --set hub.replicas=4
replicas=$(kubectl -n "$ns" get statefulset millstream-hub -o jsonpath='{.spec.replicas}')
[ "$replicas" = 4 ] || { echo "smoke: hub replicas $replicas after scaling, expected 4" >&2; exit 1; }
"$helm" history millstream -n "$ns"
"$helm" uninstall millstream -n "$ns"
left=$(kubectl -n "$ns" get statefulset,deployment,service,networkpolicy -o name)
[ -z "$left" ] || { echo "smoke: left behind after uninstall: $left" >&2; exit 1; }
# The scaled example, installed fresh (its broker volume differs: volumeClaimTemplates are fixed
# once a StatefulSet exists, so that is no upgrade).
kubectl create namespace scaled >/dev/null
for secret in millstream-hub millstream-mqtt-tls millstream-redis; do
  kubectl -n "$ns" get secret "$secret" -o json \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); d["metadata"]={"name":d["metadata"]["name"]}; print(json.dumps(d))' \
    | kubectl -n scaled create -f - >/dev/null
done
kubectl -n scaled create secret generic millstream.millstream-pg.credentials.postgresql.acid.zalan.do \
  --from-literal=password=x >/dev/null
"$helm" install millstream "$chart" -n scaled --no-hooks --values "$chart/ci/scaled-values.yaml" >/dev/null
replicas=$(kubectl -n scaled get statefulset millstream-hub -o jsonpath='{.spec.replicas}')
[ "$replicas" = 4 ] || { echo "smoke: scaled hub replicas $replicas, expected 4" >&2; exit 1; }
kubectl -n scaled get statefulset,deployment,networkpolicy
"$helm" uninstall millstream -n scaled >/dev/null
echo "smoke: install, upgrade, scale and uninstall passed on Kubernetes $version"
