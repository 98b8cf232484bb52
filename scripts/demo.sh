#!/usr/bin/env bash
# `make demo`: the whole EAA flow on this machine, with the simulated TEE, for SGX and then for SEV-SNP.
#
# A fresh simulated platform, reference values computed from the workload's and inclavared's program files, then the
# seed's three commands (enclave-tls-server, inclavared, shelter) with simulated attesters. The same flow then runs
# with SEV-SNP evidence: the VCEK, ASK, ARK and CRL travel with the evidence, and shelter is given nothing but the
# simulated ARK to trust (no certificates on disk, no KDS). Everything started here is stopped on exit, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${EAA_DEMO_BIN:-.venv/bin}
WORKLOAD_PORT=${EAA_DEMO_WORKLOAD_PORT:-1234}
INCLAVARED_PORT=${EAA_DEMO_INCLAVARED_PORT:-1236}
SNP_WORKLOAD_PORT=${EAA_DEMO_SNP_WORKLOAD_PORT:-1244}
SNP_INCLAVARED_PORT=${EAA_DEMO_SNP_INCLAVARED_PORT:-1246}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/eaa-demo.XXXXXX")
export EAA_SIM_DIR="$WORK/sim"
PIDS=()

cleanup() {
    status=$?
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ "$status" -ne 0 ]; then
        for log in "$WORK"/*.log; do [ -f "$log" ] && { echo "--- $log"; tail -n 20 "$log"; }; done
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() {
    "$BIN/python" - "$1" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(f"nothing is listening on 127.0.0.1:{port}")
PY
}

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "A simulated SGX platform (its own root CA, PCK, TCB info, QE identity) and SEV-SNP platform (ARK, ASK, VCEK, CRL) in $EAA_SIM_DIR"
"$BIN/eaa" sim init --dir "$EAA_SIM_DIR"

step "Reference values: the MRENCLAVE the workload's program (and inclavared's) must measure to"
# --sim with no files: what enclave-tls-server measures by default (its own program files);
# --inclavared-sim: the same for inclavared, written as the file's [inclavared] section.
"$BIN/shelter" mrenclave --sim --inclavared-sim -o "$WORK/reference.toml"

step "enclave-tls-server --ip 127.0.0.1 --port $WORKLOAD_PORT --mutual (attester sim_sgx_ecdsa)"
# A simulated attester measures the server's own program files into its MRENCLAVE.
"$BIN/enclave-tls-server" --ip 127.0.0.1 --port "$WORKLOAD_PORT" --mutual --attester sim_sgx_ecdsa --trust-sim \
    >"$WORK/workload.log" 2>&1 &
PIDS+=($!)
wait_port "$WORKLOAD_PORT"

step "inclavared --listen 127.0.0.1:$INCLAVARED_PORT --xfer 127.0.0.1:$WORKLOAD_PORT --attester sim_sgx_ecdsa --verifier sgx_ecdsa_qve --mutual"
"$BIN/inclavared" --listen "127.0.0.1:$INCLAVARED_PORT" --xfer "127.0.0.1:$WORKLOAD_PORT" \
    --attester sim_sgx_ecdsa --verifier sgx_ecdsa_qve --mutual --trust-sim >"$WORK/inclavared.log" 2>&1 &
PIDS+=($!)
wait_port "$INCLAVARED_PORT"

step "shelter remoteattestation --verifier sgx_ecdsa --tls openssl --crypto openssl --addr=tcp://127.0.0.1:$INCLAVARED_PORT"
"$BIN/shelter" remoteattestation --verifier sgx_ecdsa --tls openssl --crypto openssl \
    --addr="tcp://127.0.0.1:$INCLAVARED_PORT" --trust-sim --reference "$WORK/reference.toml"

step "inclavared's log"
cat "$WORK/inclavared.log"

step "SEV-SNP: the MEASUREMENT the same programs have in a simulated SNP guest, and the simulated ARK to trust"
"$BIN/shelter" mrenclave --sim --inclavared-sim --tee snp -o "$WORK/snp-reference.toml"
"$BIN/eaa" sim root --tee snp -o "$WORK/snp-ark.pem"

step "enclave-tls-server --ip 127.0.0.1 --port $SNP_WORKLOAD_PORT --mutual --attester sim_sev_snp --endorsements"
# --endorsements: the certificate table (VCEK, ASK, ARK) and the CRL go into the certificate with the report.
"$BIN/enclave-tls-server" --ip 127.0.0.1 --port "$SNP_WORKLOAD_PORT" --mutual --attester sim_sev_snp --trust-sim \
    --endorsements >"$WORK/snp-workload.log" 2>&1 &
PIDS+=($!)
wait_port "$SNP_WORKLOAD_PORT"

step "inclavared --listen 127.0.0.1:$SNP_INCLAVARED_PORT --xfer 127.0.0.1:$SNP_WORKLOAD_PORT --attester sim_sev_snp --verifier sev_snp --mutual --endorsements"
"$BIN/inclavared" --listen "127.0.0.1:$SNP_INCLAVARED_PORT" --xfer "127.0.0.1:$SNP_WORKLOAD_PORT" \
    --attester sim_sev_snp --verifier sev_snp --mutual --trust-sim --endorsements >"$WORK/snp-inclavared.log" 2>&1 &
PIDS+=($!)
wait_port "$SNP_INCLAVARED_PORT"

step "shelter remoteattestation --verifier sev_snp --trust-root snp-ark.pem --addr=tcp://127.0.0.1:$SNP_INCLAVARED_PORT"
# shelter sees no simulated platform (an empty EAA_SIM_DIR) and no KDS: it trusts the ARK file and nothing else.
mkdir -p "$WORK/shelter-sim"
EAA_SIM_DIR="$WORK/shelter-sim" "$BIN/shelter" remoteattestation --verifier sev_snp \
    --addr="tcp://127.0.0.1:$SNP_INCLAVARED_PORT" --trust-root "$WORK/snp-ark.pem" \
    --kds-url "http://127.0.0.1:9/" --reference "$WORK/snp-reference.toml"

step "inclavared's log (SEV-SNP)"
cat "$WORK/snp-inclavared.log"

step "Both flows attested: SGX (sgx_ecdsa) and SEV-SNP (sev_snp), each through inclavared to its workload"
echo "Remote attestation is successful."
