#!/bin/bash
# Load figures of kiezd on its two storage backends, bbolt and PostgreSQL,
# with the c2s load harness of ../shared/bench (see its RESULTS.md): the
# archived-message scenario (msg: 50 pairs, 16 in flight, every message
# archived for sender and recipient before delivery) and the MAM scenario
# (newest 50 of an archive of M messages). Rates are per second of server
# CPU: kiezd's (from the harness) plus, on PostgreSQL, that of every
# process of the cluster over the same window (postmaster and backends,
# with the CPU of backends that exited, from /proc).
#
# Usage, from the repository root:
#   examples/kiezd/bench-storage.sh [BENCH_DIR]   # default ../shared/bench
# Environment: DUR (msg measuring time, default 10s), MAMFILL (archive
# size, default 10000), MAMQ (queries, default 300), REPS (runs of each
# scenario, default 2), ONLY (bbolt or postgres: one backend).
#
# PostgreSQL runs as a throwaway cluster (initdb in a temporary
# directory, a Unix socket there, durable: fsync and synchronous_commit
# on, as bbolt's appends are); as root, as the postgres user. Nothing
# outside the temporary directory is touched; all is removed at the end.
set -euo pipefail
BENCH=$(cd "${1:-../shared/bench}" && pwd)
DUR=${DUR:-10s} MAMFILL=${MAMFILL:-10000} MAMQ=${MAMQ:-300} REPS=${REPS:-2}
PORT=35222
W=$(mktemp -d /tmp/kiez-storage-bench.XXXXXX)
chmod 755 "$W"
go build -o "$W/kiezd" ./examples/kiezd
(cd "$BENCH" && go build -o "$W/bench" .)
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
AS=()
if [ "$(id -u)" = 0 ]; then AS=(runuser -u postgres --); fi
KPID= PGUP= SAMPLER=
cleanup() {
	[ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null || true
	[ -n "$KPID" ] && kill "$KPID" 2>/dev/null && wait "$KPID" 2>/dev/null || true
	[ -n "$PGUP" ] && "${AS[@]}" "$PGBIN/pg_ctl" stop -w -m fast -D "$W/pg/data" >/dev/null 2>&1 || true
	if [ -n "${KEEP:-}" ]; then echo "kept $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT

# cpu_sampler PIDFILE OUT: every 0.2 s, the time and the CPU seconds of the
# process in PIDFILE with its children (live, and exited ones it waited
# for), in the background ($!).
cpu_sampler() {
	python3 - "$1" "$2" <<'EOF' &
import os, sys, time
pidfile, out = sys.argv[1], sys.argv[2]
hz = os.sysconf("SC_CLK_TCK")
def stat(pid):
    try:
        s = open(f"/proc/{pid}/stat").read()
    except OSError:
        return None
    f = s[s.rindex(")") + 2:].split()
    return int(f[1]), sum(int(x) for x in f[11:15])  # ppid; utime stime cutime cstime
with open(out, "w") as o:
    while True:
        try:
            root = int(open(pidfile).read().split()[0])
        except (OSError, ValueError):
            time.sleep(0.2); continue
        total = 0
        for p in os.listdir("/proc"):
            if p.isdigit():
                st = stat(p)
                if st and (int(p) == root or st[0] == root):
                    total += st[1]
        o.write(f"{time.time():.3f} {total / hz:.3f}\n"); o.flush()
        time.sleep(0.2)
EOF
}

# cpu_now PIDFILE: the CPU seconds of the process in PIDFILE with its
# children, now.
cpu_now() {
	python3 - "$1" <<'EOF'
import os, sys
hz = os.sysconf("SC_CLK_TCK")
root = int(open(sys.argv[1]).read().split()[0])
total = 0
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            s = open(f"/proc/{p}/stat").read()
        except OSError:
            continue
        f = s[s.rindex(")") + 2:].split()
        if int(p) == root or int(f[1]) == root:
            total += sum(int(x) for x in f[11:15])
print(f"{total / hz:.3f}")
EOF
}

# cpu_between SAMPLES T0 T1: CPU seconds used between two times (epoch s).
cpu_between() {
	python3 - "$@" <<'EOF'
import sys
f, t0, t1 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
pts = [tuple(map(float, l.split())) for l in open(f) if l.strip()]
def at(t):
    prev = pts[0]
    for p in pts:
        if p[0] >= t:
            if p[0] == prev[0]:
                return p[1]
            return prev[1] + (p[1] - prev[1]) * (t - prev[0]) / (p[0] - prev[0])
        prev = p
    return pts[-1][1]
print(f"{at(t1) - at(t0):.3f}")
EOF
}

# logtime LOG PATTERN: the epoch time of the first harness log line
# matching PATTERN (the harness stamps its lines HH:MM:SS.mmm, local time).
logtime() {
	local hms
	hms=$(grep -m1 "$2" "$1" | cut -d' ' -f1)
	date -d "$(date +%F) $hms" +%s.%N
}

start_kiezd() { # BACKEND
	local dir=$W/$1
	rm -rf "$dir" && mkdir -p "$dir"
	cat > "$dir/kiezd.toml" <<EOF
domains = ["bench.test"]
data_dir = "data"
[listen]
c2s = ["127.0.0.1:$PORT"]
direct_tls = []
https = []
[s2s]
listen = []
[log]
level = "warn"
[registration]
policy = "open"
[filter]
allow = ["127.0.0.1"]
[muc]
enabled = false
EOF
	if [ "$1" = postgres ]; then
		"${AS[@]}" "$PGBIN/psql" -q -h "$W/pg" -d postgres -c "SET client_min_messages = warning; DROP SCHEMA IF EXISTS kiez CASCADE; CREATE SCHEMA kiez"
		printf '[storage]\nbackend = "postgres"\ndsn = "host=%s dbname=postgres user=postgres search_path=kiez"\n' "$W/pg" >> "$dir/kiezd.toml"
	fi
	"$W/kiezd" -config "$dir/kiezd.toml" serve 2> "$dir/kiezd.log" &
	KPID=$!
	echo $KPID > "$W/kiezd.pid"
	for _ in $(seq 100); do
		(exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && return 0
		sleep 0.1
	done
	cat "$dir/kiezd.log" >&2
	exit 1
}

stop_kiezd() { kill "$KPID"; wait "$KPID" || true; KPID=; }

# Passwords need 8 characters on kiezd.
B() { "$W/bench" "$@" -port $PORT -domain bench.test -pass benchpass -pidfile "$W/kiezd.pid"; }

# run BACKEND: the scenarios on a fresh kiezd; a JSON line each, with
# pg_cpu_s (0 on bbolt) and the rates per server CPU-s beside the harness's.
run() {
	local be=$1 log=$W/$1.log pgs=$W/$1.pgcpu
	if [ "$be" = postgres ]; then
		cpu_sampler "$W/pg/data/postmaster.pid" "$pgs"
		SAMPLER=$! # global: cleanup kills it should the script fail meanwhile
	fi
	for i in $(seq "$REPS"); do
		start_kiezd "$be"
		B register -n 100 -c 4 -per-conn 1 > /dev/null 2>> "$log"
		: > "$log.msg"
		B msg -p 50 -w 16 -d "$DUR" -warmup 3s -label "kiezd-$be" > "$W/out" 2> "$log.msg"
		local pg=0 t0
		if [ "$be" = postgres ]; then
			t0=$(python3 -c "print($(logtime "$log.msg" 'msg: .* pairs') + 3)") # after the warm-up
			pg=$(cpu_between "$pgs" "$t0" "$(python3 -c "import json; print($t0 + json.load(open('$W/out'))['window_s'])")")
		fi
		report "$be" msg "$(python3 -c "import json; print(json.load(open('$W/out'))['server_cpu_s'])") $pg"
		stop_kiezd
	done
	start_kiezd "$be"
	B mam -m "$MAMFILL" -q 1 -page 50 > /dev/null 2>> "$log"
	# The queries' window is short: the CPU of kiezd and of PostgreSQL is
	# read before and after the whole run (login, disco and one count
	# query besides the timed queries).
	for i in $(seq "$REPS"); do
		local k0 p0=0 k1 p1=0
		k0=$(cpu_now "$W/kiezd.pid")
		if [ "$be" = postgres ]; then p0=$(cpu_now "$W/pg/data/postmaster.pid"); fi
		B mam -m "$MAMFILL" -q "$MAMQ" -page 50 -label "kiezd-$be" > "$W/out" 2>> "$log"
		k1=$(cpu_now "$W/kiezd.pid")
		if [ "$be" = postgres ]; then p1=$(cpu_now "$W/pg/data/postmaster.pid"); fi
		report "$be" mam "$(python3 -c "print(round($k1 - $k0, 3), round($p1 - $p0, 3))")"
	done
	stop_kiezd
	[ -n "$SAMPLER" ] && kill "$SAMPLER" || true
	SAMPLER=
}

report() { # BACKEND SCENARIO "KIEZD_CPU PG_CPU"
	python3 - "$W/out" $3 <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
kz, pg = float(sys.argv[2]), float(sys.argv[3])
m["kiezd_cpu_s"], m["pg_cpu_s"] = kz, pg
cpu = kz + pg
if m["scenario"] == "msg":
    m["msgs_per_server_db_cpu_s"] = round(m["delivered_in_window"] / cpu, 1)
else:
    m["server_db_cpu_ms_per_query"] = round(1000 * cpu / m["queries"], 3)
print(json.dumps(m))
EOF
}

mkdir -p "$W/pg"
if [ ${#AS[@]} -gt 0 ]; then chown postgres "$W/pg"; fi
"${AS[@]}" "$PGBIN/initdb" -D "$W/pg/data" -U postgres -A trust -E UTF8 --no-locale > /dev/null
"${AS[@]}" "$PGBIN/pg_ctl" start -w -D "$W/pg/data" -l "$W/pg/log" -o "-c listen_addresses='' -c unix_socket_directories=$W/pg" > /dev/null
PGUP=1
ulimit -n 20000
case ${ONLY:-both} in bbolt | both) run bbolt ;; esac
case ${ONLY:-both} in postgres | both) run postgres ;; esac
