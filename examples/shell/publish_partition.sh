#!/usr/bin/env bash
# Stage → gate → swap → publish, for one daily partition of `orders`, with
# curl and jq against a running warden agent.
#
#   publish_partition.sh 2026-11-20
#
# 1. stage: rebuild the partition in the staging table from the source;
# 2. gate: ask warden whether the staged partition may be published (the
#    dataset's `gate.table` is the staging table);
# 3. swap: replace the partition of the published table with the staged rows;
# 4. publish: tell warden, so consumers reading
#    GET /api/v1/datasets/orders/published move to this partition.
#
# Exit status: 0 published; 1 the gate denied on a breach (the partition is
# quarantined; fix the data or have it overridden, do not retry as is);
# 2 no decision, or denied for an error or a timeout (retrying may help).
#
# Environment:
#   WARDEN_URL        the agent (default http://127.0.0.1:9464)
#   WARDEN_API_TOKEN  bearer token, when agent.api_tokens is set
#   RUN_ID            this run; a repeat with the same id replays the decision
#                     (default: orders-<partition>-<unix time>)
#   GATE_WAIT         how long the gate may take (default 300s)
#   WAREHOUSE_SQL     command that runs SQL read from stdin against the
#                     warehouse (default: psql "$WAREHOUSE_URL" -v ON_ERROR_STOP=1 -q)
#   SOURCE_TABLE, STAGING_TABLE, TARGET_TABLE
#                     default raw.orders, staging.orders, analytics.orders
set -euo pipefail

partition=${1:?usage: publish_partition.sh YYYY-MM-DD}
# The partition goes into SQL below: accept a date and nothing else.
if ! [[ $partition =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]]; then
  echo "invalid partition '$partition': expected YYYY-MM-DD" >&2
  exit 2
fi
warden=${WARDEN_URL:-http://127.0.0.1:9464}
run_id=${RUN_ID:-orders-$partition-$(date +%s)}
wait=${GATE_WAIT:-300s}
source_table=${SOURCE_TABLE:-raw.orders}
staging_table=${STAGING_TABLE:-staging.orders}
target_table=${TARGET_TABLE:-analytics.orders}
auth=()
if [[ -n ${WARDEN_API_TOKEN:-} ]]; then
  auth=(-H "Authorization: Bearer $WARDEN_API_TOKEN")
fi

sql() {
  if [[ -n ${WAREHOUSE_SQL:-} ]]; then
    eval "$WAREHOUSE_SQL"
  else
    psql "${WAREHOUSE_URL:?set WAREHOUSE_URL or WAREHOUSE_SQL}" -v ON_ERROR_STOP=1 -q
  fi
}

# POSTs JSON to warden; prints the body, then the HTTP status on a last line.
# Connection failures and 503 (registry down) are retried by curl: both
# requests are idempotent (same run id, same gate id).
post() {
  curl --silent --show-error --retry 5 --retry-connrefused --retry-delay 2 \
    --max-time 600 "${auth[@]}" -H 'Content-Type: application/json' \
    --data "$2" --write-out '\n%{http_code}' "$warden$1"
}

echo "stage: $staging_table partition $partition"
sql <<SQL
BEGIN;
DELETE FROM $staging_table WHERE order_date = '$partition';
INSERT INTO $staging_table SELECT * FROM $source_table WHERE order_date = '$partition';
COMMIT;
SQL

echo "gate: run $run_id"
body=$(jq -n --arg p "$partition" --arg r "$run_id" '{dataset: "orders", partition: $p, run_id: $r}')
if ! answer=$(post "/api/v1/gates?wait=$wait" "$body"); then
  echo "cannot reach warden at $warden" >&2
  exit 2
fi
code=$(tail -n 1 <<<"$answer")
gate=$(sed '$d' <<<"$answer")
if [[ $code != 200 ]]; then
  echo "no decision (HTTP $code): $(jq -r '.detail // .status // .' <<<"$gate" 2>/dev/null || echo "$gate")" >&2
  exit 2
fi
gate_id=$(jq -r .gate_id <<<"$gate")
status=$(jq -r .status <<<"$gate")
basis=$(jq -r .basis <<<"$gate")
echo "gate $gate_id: $status ($basis)"
jq -r '.results[] | "  \(.outcome)\t\(.check)\t\(.message)"' <<<"$gate"
jq -r '.reasons[] | "  - \(.)"' <<<"$gate"
case "$status/$basis" in
  allowed/*) ;;
  denied/checks) exit 1 ;;
  *) exit 2 ;;
esac

echo "swap: $target_table partition $partition"
sql <<SQL
BEGIN;
DELETE FROM $target_table WHERE order_date = '$partition';
INSERT INTO $target_table SELECT * FROM $staging_table WHERE order_date = '$partition';
COMMIT;
SQL

echo "publish: gate $gate_id"
answer=$(post "/api/v1/datasets/orders/partitions/$partition/publish" "$(jq -n --arg g "$gate_id" '{gate_id: $g, by: "publish_partition.sh"}')")
code=$(tail -n 1 <<<"$answer")
if [[ $code != 200 ]]; then
  echo "publication not recorded (HTTP $code): $(sed '$d' <<<"$answer" | jq -r .detail)" >&2
  exit 2
fi
echo "published orders $partition"
