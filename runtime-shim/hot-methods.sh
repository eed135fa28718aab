#!/usr/bin/env bash
# Regenerates runtime-shim/Pilotlight.RuntimeShim/hot-methods.txt, the order in which the NativeAOT compiler lays out
# the shim's code (IlcOrderFile): every method the shim and the sandbox agent run, from start through serving traffic
# to draining, comes first and together, so the executable pages they touch are few (the rest of the code is never
# read, and its pages never become resident). Methods both modes run come first, then function mode's, then sandbox
# mode's, so neither process maps pages of the other's code. A method missing from the list still works; it is only
# laid out among the cold code. Rerun after changing what the shim runs, or after a .NET update. The file holds
# symbol names only, one a line (no comment line: measured, the build with one was laid out as if it had no order file).
#
# How: publishes the shim (NativeAOT, symbols kept), runs it in both modes under valgrind's exp-bbv tool (which lists
# every basic block executed), drives each through what it serves (HTTP/1.1 and h2c forwarding, /ready, /stats, the
# admin port, exec, files, archive, activity) against the sample model server, then maps the blocks to symbols.
# Needs valgrind, curl, nm, readelf, perl and a built sample model server (make pod-processes).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/runtime-shim/Pilotlight.RuntimeShim/hot-methods.txt
work=$(mktemp -d /tmp/pilotlight-hot-methods.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

for tool in valgrind curl nm readelf perl; do
    command -v "$tool" >/dev/null || { echo "hot-methods: $tool is required" >&2; exit 2; }
done
server=$root/samples/model-server/Pilotlight.SampleModelServer/bin/Release/net10.0/Pilotlight.SampleModelServer.dll
[[ -f $server ]] || { echo "hot-methods: build the sample model server first (make pod-processes)" >&2; exit 2; }

echo "hot-methods: publishing the shim (NativeAOT) into $work" >&2
# Without the current order file: the names do not depend on it, and a stale one must not shape the new one.
dotnet publish "$root/runtime-shim/Pilotlight.RuntimeShim" -c Release -r linux-x64 -p:PublishAot=true -p:StripSymbols=true \
    -p:IlcOrderFile= -o "$work/publish" -nologo -v quiet >&2
# valgrind cannot read the DWARF 5 of the .dbg file, so it runs a copy without it and the symbols come from nm.
mkdir "$work/run" && cp "$work/publish/Pilotlight.RuntimeShim" "$work/run/"
# Only managed methods (the __managedcode section): the order file is about those.
read -r code_start code_size < <(readelf -SW "$work/publish/Pilotlight.RuntimeShim" |
    awk '{ sub(/^ *\[ *[0-9]+\]/, "") } $1 == "__managedcode" { print $3, $5 }')
nm --defined-only "$work/publish/Pilotlight.RuntimeShim.dbg" |
    perl -ne 'BEGIN { ($lo, $n) = (hex shift, hex shift) } @f = split; print "$f[0] $f[2]\n" if $f[1] =~ /^[tT]$/ && hex($f[0]) >= $lo && hex($f[0]) < $lo + $n' \
    "$code_start" "$code_size" | sort > "$work/symbols"

free_port() { perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1:0")->sockport'; }
upstream=$(free_port); shim=$(free_port); admin=$(free_port); agent=$(free_port)
PORT=$upstream LISTEN_ADDRESS=127.0.0.1 POD_NAME=hot dotnet "$server" >"$work/upstream.log" 2>&1 & pids+=($!)
mkdir "$work/workspace"
PILOTLIGHT_LISTEN_ADDRESS=127.0.0.1 PILOTLIGHT_LISTEN_PORT=$shim PILOTLIGHT_ADMIN_PORT=$admin \
    PILOTLIGHT_UPSTREAM=http://127.0.0.1:$upstream PILOTLIGHT_MAX_CONCURRENCY=4 PILOTLIGHT_QUEUE_LENGTH=64 PILOTLIGHT_DRAIN_SECONDS=5 \
    valgrind --tool=exp-bbv --interval-size=1000000000 --bb-out-file="$work/bb-shim" --pc-out-file="$work/pc-shim" \
    "$work/run/Pilotlight.RuntimeShim" >"$work/shim.log" 2>&1 & pids+=($!); shim_pid=$!
PILOTLIGHT_MODE=sandbox PILOTLIGHT_WORKSPACE=$work/workspace PILOTLIGHT_AGENT_INSECURE=true \
    PILOTLIGHT_LISTEN_ADDRESS=127.0.0.1 PILOTLIGHT_LISTEN_PORT=$agent \
    valgrind --tool=exp-bbv --interval-size=1000000000 --bb-out-file="$work/bb-agent" --pc-out-file="$work/pc-agent" \
    "$work/run/Pilotlight.RuntimeShim" >"$work/agent.log" 2>&1 & pids+=($!); agent_pid=$!

wait_ready() {
    for _ in $(seq 1 600); do curl -fs -o /dev/null "$1" && return 0; sleep 0.5; done
    echo "hot-methods: $1 never became ready" >&2; exit 1
}
wait_ready "http://127.0.0.1:$upstream/healthz"
wait_ready "http://127.0.0.1:$shim/ready"
wait_ready "http://127.0.0.1:$agent/ready"
# The load base of the executable in each process, to turn executed addresses into the symbols' addresses.
base() { awk -v f="$work/run/Pilotlight.RuntimeShim" '$6 == f && $3 == "00000000" { split($1, r, "-"); print r[1]; exit }' "/proc/$1/maps"; }
shim_base=$(base "$shim_pid"); agent_base=$(base "$agent_pid")

s=http://127.0.0.1:$shim a=http://127.0.0.1:$agent
echo "hot-methods: driving both modes" >&2
# Some requests fail on purpose (a 500, a refused path); what matters is only which code ran.
req() { curl "$@" || true; }
n=(-s -o /dev/null)  # Each request of a curl command line after --next takes its own options; the connection is kept.
json=(-H 'Content-Type: application/json')
for round in $(seq 1 6); do
    # Keep-alive connections, several at once (over the concurrency limit, so requests queue), both protocols.
    clients=()
    for c in 1 2 3 4 5 6; do
        req "${n[@]}" "${json[@]}" -d '{"prompt":"hi"}' "$s/predict" --next "${n[@]}" -d '{"prompt":"again"}' "$s/predict?ms=20" \
            --next "${n[@]}" "$s/headers" --next "${n[@]}" -X POST "$s/predict?failOn=hot" & clients+=($!)
    done
    req "${n[@]}" --http2-prior-knowledge -d '{"prompt":"h2c"}' "$s/predict" --next "${n[@]}" --http2-prior-knowledge "$s/healthz" & clients+=($!)
    req "${n[@]}" "$s/stats" --next "${n[@]}" -I "$s/ready" --next "${n[@]}" "$s/ready"
    req "${n[@]}" "http://127.0.0.1:$admin/live" --next "${n[@]}" "http://127.0.0.1:$admin/nope"
    wait "${clients[@]}" || true
    clients=()
    req "${n[@]}" "${json[@]}" -d "{\"argv\":[\"sh\",\"-c\",\"echo exec $round; ls /; echo oops >&2\"],\"stdin\":\"x\"}" "$a/exec" & clients+=($!)
    req "${n[@]}" "${json[@]}" -d '{"argv":["true"]}' "$a/exec" --next "${n[@]}" "${json[@]}" -d '{"argv":["no-such-program"]}' "$a/exec" & clients+=($!)
    req "${n[@]}" -X PUT --data-binary "hello $round" "$a/files?path=dir/f$round.txt" --next "${n[@]}" "$a/files?path=dir/f$round.txt" \
        --next "${n[@]}" "$a/files/list?path=dir" --next "${n[@]}" "$a/activity" --next "${n[@]}" "$a/archive?path=dir" \
        --next "${n[@]}" "$a/files?path=../etc/passwd" --next "${n[@]}" "$a/nope" --next "${n[@]}" -X DELETE "$a/files?path=dir/f$round.txt"
    wait "${clients[@]}" || true
done
req "${n[@]}" "http://127.0.0.1:$admin/wait-for-drain"
kill -TERM "$shim_pid" "$agent_pid"
wait "$shim_pid" "$agent_pid" || true

# Executed addresses -> the names of the methods that hold them, in the order each first ran.
executed() {
    perl -e '
        my ($symbols, $pcs, $base, $end) = (shift, shift, hex shift, hex(shift) + hex shift);
        open my $s, "<", $symbols or die; my (@addr, @name);
        while (<$s>) { my ($a, $n) = split; push @addr, hex $a; push @name, $n }
        open my $p, "<", $pcs or die; my %seen;
        while (<$p>) {
            next unless /^F:\d+:([0-9a-f]+):/; my $a = hex($1) - $base;
            my ($lo, $hi) = (0, $#addr); next if $hi < 0 || $a < $addr[0] || $a >= $end;
            while ($lo < $hi) { my $mid = int(($lo + $hi + 1) / 2); if ($addr[$mid] <= $a) { $lo = $mid } else { $hi = $mid - 1 } }
            print "$name[$lo]\n" unless $seen{$name[$lo]}++;
        }' "$work/symbols" "$1" "$2" "$code_start" "$code_size"
}
executed "$work/pc-shim" "$shim_base" > "$work/shim.methods"
executed "$work/pc-agent" "$agent_base" > "$work/agent.methods"
{
    awk 'NR == FNR { agent[$0] = 1; next } ($0 in agent)' "$work/agent.methods" "$work/shim.methods"
    awk 'NR == FNR { agent[$0] = 1; next } !($0 in agent)' "$work/agent.methods" "$work/shim.methods"
    awk 'NR == FNR { shim[$0] = 1; next } !($0 in shim)' "$work/shim.methods" "$work/agent.methods"
} > "$out"
echo "hot-methods: $(wc -l < "$out") methods (function mode $(wc -l < "$work/shim.methods"), sandbox mode $(wc -l < "$work/agent.methods")) -> $out" >&2
