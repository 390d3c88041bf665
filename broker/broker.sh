#!/usr/bin/env bash
# broker/broker.sh: make sure a RabbitMQ broker answers where warren expects one.
#
#   bash broker/broker.sh [start]   (what `npm run broker` runs)
#   bash broker/broker.sh stop
#   bash broker/broker.sh status
#   bash broker/broker.sh COMMAND --help
#
# Works from any directory; needs bash (3.2 or later) and, to start a broker,
# RabbitMQ 3.10 or later (installed with apt-get when missing and run as root).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
STATE_DIR="$ROOT/.warren/broker"
PROJECT_CONF="$ROOT/rabbitmq.conf"
PLUGINS_FILE="$SCRIPT_DIR/enabled_plugins"
DEFAULT_PORT=5672
# Offsets from the AMQP port for a broker started on a port other than 5672
# (5672 itself uses the ports written in rabbitmq.conf: 15672 and 15692).
MGMT_OFFSET=10000
PROM_OFFSET=10020
# Erlang distribution port: AMQP port + 20010, never RabbitMQ's default of
# AMQP port + 20000, which is what a system broker on 5672 holds (25672).
DIST_OFFSET=20010
START_WAIT_S=60

say() { printf 'broker: %s\n' "$*"; }
err() { printf 'broker: %s\n' "$*" >&2; }

usage_main() {
  cat <<'EOF'
Usage: bash broker/broker.sh [start|stop|status] [--help]

Makes sure a RabbitMQ broker answers at the address warren uses.

Commands:
  start    (default) check the target address; start a project-local broker
           if nothing answers there (see `start --help`)
  stop     stop the project-local broker started by `start` for this port
  status   say whether the target address answers and whether the
           project-local broker runs

Environment:
  WARREN_ADDRESS       amqp://user:pass@host:port/vhost (default amqp://127.0.0.1:5672)
  WARREN_BROKER_PORT   overrides the port of WARREN_ADDRESS

The project-local broker keeps its data, logs and pid file under
.warren/broker/ at the repository root.
EOF
}

usage_start() {
  cat <<'EOF'
Usage: bash broker/broker.sh start [--help]

1. If something answers AMQP 0-9-1 at the target address (WARREN_ADDRESS,
   default 127.0.0.1:5672, port overridden by WARREN_BROKER_PORT), say so and
   exit 0.
2. If the target host is not local, exit 1: a remote broker cannot be started.
3. Find RabbitMQ (/usr/lib/rabbitmq/bin, PATH, /usr/sbin, /usr/local/sbin,
   /opt/homebrew/sbin); when missing, install it with apt-get if running as
   root on Debian/Ubuntu, else print how to install it and exit 1.
4. Start a detached broker with the project's rabbitmq.conf and
   broker/enabled_plugins, node warren@localhost (warren-PORT@localhost on a
   port other than 5672, with management on PORT+10000 and Prometheus on
   PORT+10020), data and logs under .warren/broker/, then wait up to 60 s for
   it to answer. System settings (/etc/rabbitmq/rabbitmq-env.conf, conf.d,
   advanced.config) are not read.

The broker keeps running after this script exits: stop it with
`bash broker/broker.sh stop` (same WARREN_ADDRESS / WARREN_BROKER_PORT).
EOF
}

usage_stop() {
  cat <<'EOF'
Usage: bash broker/broker.sh stop [--help]

Stops the project-local broker that `start` started for the target port
(node warren@localhost, or warren-PORT@localhost), with rabbitmqctl. Never
touches any other broker, such as a system-wide one.
EOF
}

usage_status() {
  cat <<'EOF'
Usage: bash broker/broker.sh status [--help]

Says whether something answers AMQP at the target address and whether the
project-local broker for the target port runs. Exits 0 when the target
address answers, 1 otherwise.
EOF
}

# ---------------------------------------------------------------------------
# Target address

url_decode() {
  local s="$1"
  case "$s" in
    *%*) printf '%b' "${s//%/\\x}" ;;
    *) printf '%s' "$s" ;;
  esac
}

parse_address() {
  local url="${WARREN_ADDRESS:-}" rest authority hostport userinfo=""
  SCHEME=amqp
  HOST=127.0.0.1
  PORT=""
  AMQP_USER=""
  AMQP_PASS=""
  AMQP_VHOST=""
  RAW_USERINFO=""
  RAW_VHOST=""
  if [ -n "$url" ]; then
    case "$url" in
      *://*) SCHEME="${url%%://*}"; rest="${url#*://}" ;;
      *) rest="$url" ;;
    esac
    case "$SCHEME" in
      amqp | amqps) ;;
      *) err "WARREN_ADDRESS must be an amqp:// or amqps:// URL, got: $url"; exit 2 ;;
    esac
    rest="${rest%%\?*}"
    rest="${rest%%#*}"
    authority="${rest%%/*}"
    case "$rest" in
      */*) RAW_VHOST="${rest#*/}"; AMQP_VHOST="$(url_decode "$RAW_VHOST")" ;;
    esac
    case "$authority" in
      *@*) userinfo="${authority%@*}"; hostport="${authority##*@}" ;;
      *) hostport="$authority" ;;
    esac
    RAW_USERINFO="$userinfo"
    if [ -n "$userinfo" ]; then
      case "$userinfo" in
        *:*) AMQP_USER="$(url_decode "${userinfo%%:*}")"; AMQP_PASS="$(url_decode "${userinfo#*:}")" ;;
        *) AMQP_USER="$(url_decode "$userinfo")" ;;
      esac
    fi
    case "$hostport" in
      \[*\]:*) HOST="${hostport%%]*}"; HOST="${HOST#[}"; PORT="${hostport##*]:}" ;;
      \[*\]) HOST="${hostport#[}"; HOST="${HOST%]}" ;;
      *:*) HOST="${hostport%%:*}"; PORT="${hostport##*:}" ;;
      "") ;;
      *) HOST="$hostport" ;;
    esac
    [ -n "$HOST" ] || HOST=127.0.0.1
  fi
  if [ -z "$PORT" ]; then
    if [ "$SCHEME" = amqps ]; then PORT=5671; else PORT=$DEFAULT_PORT; fi
  fi
  if [ -n "${WARREN_BROKER_PORT:-}" ]; then
    PORT="$WARREN_BROKER_PORT"
  fi
  case "$PORT" in
    '' | *[!0-9]*) err "invalid port: '$PORT'"; exit 2 ;;
  esac
  PORT=$((10#$PORT))
  if [ "$PORT" -lt 1 ] || [ "$PORT" -gt 65535 ]; then
    err "invalid port: $PORT"
    exit 2
  fi
  NODE_SHORT=warren
  [ "$PORT" -eq "$DEFAULT_PORT" ] || NODE_SHORT="warren-$PORT"
  NODE="$NODE_SHORT@localhost"
  PID_FILE="$STATE_DIR/$NODE.pid"
  LOG_DIR="$STATE_DIR/log"
  LOG_FILE="$LOG_DIR/$NODE.log"
  STARTUP_LOG="$LOG_DIR/$NODE.startup.log"
  if [ "$PORT" -eq "$DEFAULT_PORT" ]; then
    MGMT_PORT=15672
    PROM_PORT=15692
  else
    MGMT_PORT=$((PORT + MGMT_OFFSET))
    PROM_PORT=$((PORT + PROM_OFFSET))
  fi
  DIST_PORT=$((PORT + DIST_OFFSET))
}

host_is_local() {
  case "$HOST" in
    localhost | localhost.localdomain | 127.* | ::1 | 0.0.0.0) return 0 ;;
  esac
  local h
  h="$(hostname 2>/dev/null || true)"
  [ -n "$h" ] && [ "$HOST" = "$h" ] && return 0
  return 1
}

# ---------------------------------------------------------------------------
# Probing

# Runs "$@" for at most $1 seconds.
with_timeout() {
  local secs="$1"
  shift
  if command -v timeout >/dev/null 2>&1; then
    timeout "$secs" "$@"
  elif command -v gtimeout >/dev/null 2>&1; then
    gtimeout "$secs" "$@"
  else
    # macOS without coreutils: run the command in its own process group and
    # kill the whole group when the time is up, as GNU timeout does.
    perl -e '
      my $t = shift;
      my $pid = fork;
      if (!$pid) { setpgrp(0, 0); exec @ARGV or exit 127 }
      $SIG{ALRM} = sub { kill "TERM", -$pid; exit 124 };
      alarm $t;
      waitpid($pid, 0);
      exit($? >> 8);
    ' "$secs" "$@"
  fi
}

# Connects to HOST:PORT, sends the AMQP 0-9-1 protocol header and reads the
# first 11 bytes of the reply. Sets PROBE to one of:
#   amqp     the server replied with Connection.Start (it speaks AMQP 0-9-1)
#   header   it replied with a protocol header (another AMQP version)
#   silent   it accepted the TCP connection but sent nothing usable in time
#   closed   nothing accepts TCP connections there
probe() {
  local host="$1" port="$2" hex
  hex="$(with_timeout 3 bash -c '
      exec 3<>"/dev/tcp/$0/$1" || exit 3
      echo connected
      printf "AMQP\x00\x00\x09\x01" >&3
      head -c 11 <&3 | od -An -v -tx1
    ' "$host" "$port" 2>/dev/null || true)"
  case "$hex" in
    connected*) ;;
    *) PROBE=closed; return 0 ;;
  esac
  hex="$(printf '%s' "${hex#connected}" | tr -d ' \n\t')"
  # Method frame (type 1) on channel 0, then 4 size bytes, then class 10
  # (connection), method 10 (start).
  if [ "${#hex}" -ge 22 ] && [ "${hex:0:6}" = 010000 ] && [ "${hex:14:8}" = 000a000a ]; then
    PROBE=amqp
  elif [ "${hex:0:8}" = 414d5150 ]; then
    PROBE=header
  else
    PROBE=silent
  fi
}

# Whether something accepts TCP connections at 127.0.0.1:$1.
port_in_use() {
  with_timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$1" 2>/dev/null
}

# ---------------------------------------------------------------------------
# RabbitMQ installation

find_rabbitmq() {
  RMQ_SERVER=""
  local c d
  for c in /usr/lib/rabbitmq/bin/rabbitmq-server "$(command -v rabbitmq-server 2>/dev/null || true)" \
    /usr/sbin/rabbitmq-server /usr/local/sbin/rabbitmq-server /opt/homebrew/sbin/rabbitmq-server; do
    [ -n "$c" ] && [ -x "$c" ] || continue
    # Debian's /usr/sbin/rabbitmq-server is a wrapper that switches to the
    # rabbitmq user (whose files we cannot use); take the real script.
    if grep -q 'rabbitmq-script-wrapper\|su rabbitmq' "$c" 2>/dev/null && [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
      c=/usr/lib/rabbitmq/bin/rabbitmq-server
    fi
    RMQ_SERVER="$c"
    break
  done
  [ -n "$RMQ_SERVER" ] || return 1
  d="$(dirname "$RMQ_SERVER")"
  RMQ_CTL="$d/rabbitmqctl"
  [ -x "$RMQ_CTL" ] || RMQ_CTL="$(command -v rabbitmqctl 2>/dev/null || echo "$d/rabbitmqctl")"
  return 0
}

print_install_help() {
  cat >&2 <<'EOF'
broker: RabbitMQ is not installed. Install it, then run `npm run broker` again:
  Debian/Ubuntu:  sudo apt-get update && sudo apt-get install -y rabbitmq-server
  macOS:          brew install rabbitmq
  Docker:         docker run -d -p 5672:5672 -p 15672:15672 rabbitmq:3-management
(With Docker, or a system service, the broker answers on 127.0.0.1:5672 and
this script leaves it alone.)
EOF
}

install_rabbitmq() {
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "RabbitMQ is not installed: installing it with apt-get (rabbitmq-server)"
    apt-get update </dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y rabbitmq-server </dev/null
    find_rabbitmq && return 0
    err "apt-get installed rabbitmq-server but its rabbitmq-server script was not found"
    exit 1
  fi
  print_install_help
  exit 1
}

# The package's post-install script may have started a system service (it
# does where systemd or an init script may start services): give it time to
# answer rather than race it for the port.
wait_for_system_service() {
  local secs=0 i=0
  if command -v ps >/dev/null 2>&1; then
    if ps -eo user,comm 2>/dev/null | grep -q '^rabbitmq .*beam'; then secs=60; fi
  else
    secs=20
  fi
  probe "$HOST" "$PORT"
  if [ "$PROBE" != amqp ] && [ "$secs" -gt 0 ]; then
    printf 'broker: waiting for the rabbitmq-server service apt-get started '
    while [ "$i" -lt "$secs" ]; do
      probe "$HOST" "$PORT"
      [ "$PROBE" = amqp ] && break
      printf '.'
      sleep 1
      i=$((i + 1))
    done
    printf '\n'
  fi
  if [ "$PROBE" = amqp ]; then
    say "RabbitMQ answers at $HOST:$PORT"
    exit 0
  fi
}

# ---------------------------------------------------------------------------
# Project-local broker

# Exports the RABBITMQ_* variables for our node. They all take precedence
# over the system's rabbitmq-env.conf, which we do not even load.
broker_env() {
  mkdir -p "$STATE_DIR/mnesia" "$LOG_DIR"
  local env_file="$STATE_DIR/rabbitmq-env.conf"
  if [ ! -f "$env_file" ]; then
    printf '%s\n' \
      '# Generated by broker/broker.sh: stands in for /etc/rabbitmq/rabbitmq-env.conf' \
      '# (whose NODENAME and ERL flags must not apply to the project-local broker).' \
      '# Everything is set by broker.sh through RABBITMQ_* variables.' >"$env_file"
  fi
  local conf="$PROJECT_CONF"
  if [ "$PROM_PORT" -gt 65535 ] || [ "$DIST_PORT" -gt 65535 ]; then
    err "port $PORT too high: its Prometheus port ($PROM_PORT) or Erlang distribution port ($DIST_PORT) would exceed 65535"
    exit 2
  fi
  if [ "$PORT" -ne "$DEFAULT_PORT" ]; then
    conf="$STATE_DIR/rabbitmq-$PORT.conf"
    sed -e "s/^\([[:space:]]*listeners\.tcp\.default[[:space:]]*=[[:space:]]*127\.0\.0\.1:\)5672[[:space:]]*$/\1$PORT/" \
      -e "s/^\([[:space:]]*management\.tcp\.port[[:space:]]*=[[:space:]]*\)15672[[:space:]]*$/\1$MGMT_PORT/" \
      -e "s/^\([[:space:]]*prometheus\.tcp\.port[[:space:]]*=[[:space:]]*\)15692[[:space:]]*$/\1$PROM_PORT/" \
      "$PROJECT_CONF" >"$conf.tmp"
    if ! grep -q "^ *listeners\.tcp\.default *= *127\.0\.0\.1:$PORT *$" "$conf.tmp" ||
      ! grep -q "^ *management\.tcp\.port *= *$MGMT_PORT *$" "$conf.tmp" ||
      ! grep -q "^ *prometheus\.tcp\.port *= *$PROM_PORT *$" "$conf.tmp"; then
      rm -f "$conf.tmp"
      err "could not substitute the ports in $PROJECT_CONF (its listener, management.tcp.port"
      err "and prometheus.tcp.port lines must stay as broker.sh expects them)"
      exit 1
    fi
    mv "$conf.tmp" "$conf"
  fi
  CONF_USED="$conf"

  # Variables we do not set but that would otherwise come from the
  # environment (with or without the RABBITMQ_ prefix).
  local v
  for v in BASE MNESIA_DIR LOGS ENABLED_PLUGINS FEATURE_FLAGS FEATURE_FLAGS_FILE \
    QUORUM_DIR STREAM_DIR USE_LONGNAME PLUGINS_EXPAND_DIR MOTD_FILE; do
    unset "RABBITMQ_$v" "$v"
  done
  export RABBITMQ_CONF_ENV_FILE="$env_file"
  export RABBITMQ_NODENAME="$NODE"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT="$PORT"
  export RABBITMQ_DIST_PORT="$DIST_PORT"
  export RABBITMQ_CONFIG_FILE="$conf"
  export RABBITMQ_CONFIG_FILES="$STATE_DIR/conf.d/*.conf"
  export RABBITMQ_ADVANCED_CONFIG_FILE="$STATE_DIR/advanced.config"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$PLUGINS_FILE"
  export RABBITMQ_MNESIA_BASE="$STATE_DIR/mnesia"
  export RABBITMQ_LOG_BASE="$LOG_DIR"
  export RABBITMQ_PID_FILE="$PID_FILE"
  # Keep epmd (started by the first node if none runs) on loopback too.
  export ERL_EPMD_ADDRESS="${ERL_EPMD_ADDRESS:-127.0.0.1}"
  # The default user of a fresh node: the one the address names, if any.
  if [ -n "$AMQP_USER" ]; then export RABBITMQ_DEFAULT_USER="$AMQP_USER"; fi
  if [ -n "$AMQP_PASS" ]; then export RABBITMQ_DEFAULT_PASS="$AMQP_PASS"; fi
  if [ -n "$AMQP_VHOST" ]; then export RABBITMQ_DEFAULT_VHOST="$AMQP_VHOST"; fi
}

# Whether process $1 is our node's Erlang VM (and not a process that reused
# the pid of a stale pid file).
is_our_node() {
  local pid="$1"
  if [ -r "/proc/$pid/environ" ]; then
    tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -x "RABBITMQ_NODENAME=$NODE" >/dev/null
  else
    ps -p "$pid" -o args= 2>/dev/null | grep beam >/dev/null
  fi
}

# Prints the pid of our node if it runs.
own_broker_pid() {
  local pid
  [ -f "$PID_FILE" ] || return 1
  pid="$(tr -dc '0-9' <"$PID_FILE" 2>/dev/null || true)"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && is_our_node "$pid" || return 1
  printf '%s\n' "$pid"
}

show_logs() {
  local f
  for f in "$STARTUP_LOG" "$LOG_FILE"; do
    if [ -s "$f" ]; then
      err "last lines of $f:"
      tail -n 20 "$f" | cut -c1-300 | sed 's/^/    /' >&2
    fi
  done
}

stop_hint() {
  if [ -n "${WARREN_BROKER_PORT:-}" ]; then
    printf 'WARREN_BROKER_PORT=%s bash broker/broker.sh stop' "$PORT"
  elif [ -n "${WARREN_ADDRESS:-}" ]; then
    printf 'WARREN_ADDRESS=%q bash broker/broker.sh stop' "$WARREN_ADDRESS"
  else
    printf 'bash broker/broker.sh stop'
  fi
}

print_ready() {
  local user="${AMQP_USER:-guest}" pass="${AMQP_PASS:-guest}"
  say "AMQP address:  amqp://${RAW_USERINFO:-guest:guest}@127.0.0.1:$PORT${RAW_VHOST:+/$RAW_VHOST} (node $NODE)"
  say "management UI: http://127.0.0.1:$MGMT_PORT ($user/$pass)"
  say "Prometheus:    http://127.0.0.1:$PROM_PORT/metrics"
  say "data and logs: $STATE_DIR"
  say "stop it with:  $(stop_hint)"
}

cmd_start() {
  parse_address
  probe "$HOST" "$PORT"
  case "$PROBE" in
    amqp)
      say "RabbitMQ answers at $HOST:$PORT"
      exit 0
      ;;
    header)
      err "$HOST:$PORT answers with another AMQP protocol version, not AMQP 0-9-1"
      exit 1
      ;;
    silent)
      err "$HOST:$PORT accepts TCP connections but does not answer AMQP 0-9-1"
      exit 1
      ;;
  esac
  if ! host_is_local; then
    err "the remote broker at $HOST:$PORT does not answer (WARREN_ADDRESS=${WARREN_ADDRESS:-})"
    exit 1
  fi
  if [ "$SCHEME" = amqps ]; then
    err "nothing answers at $HOST:$PORT, and this script only starts plain amqp:// brokers"
    exit 1
  fi

  if ! find_rabbitmq; then
    install_rabbitmq
    wait_for_system_service
  fi

  broker_env
  local pid
  if pid="$(own_broker_pid)"; then
    say "node $NODE already runs (pid $pid) but does not answer yet at 127.0.0.1:$PORT; waiting"
  else
    local p busy=""
    for p in "$MGMT_PORT management" "$PROM_PORT Prometheus" "$DIST_PORT Erlang-distribution"; do
      if port_in_use "${p%% *}"; then
        busy="$busy ${p%% *} (${p#* })"
      fi
    done
    if [ -n "$busy" ]; then
      err "cannot start node $NODE on port $PORT: already in use on 127.0.0.1:$busy"
      err "pick another port with WARREN_BROKER_PORT, or free these ports"
      exit 1
    fi
    say "nothing answers at $HOST:$PORT: starting RabbitMQ node $NODE"
    say "  server: $RMQ_SERVER"
    say "  config: $CONF_USED"
    rm -f "$PID_FILE"
    : >"$STARTUP_LOG"
    # Detach from this shell's session so that the broker survives the npm,
    # jest or CI process that started it.
    if command -v setsid >/dev/null 2>&1; then
      (cd "$STATE_DIR" && exec setsid nohup "$RMQ_SERVER" </dev/null >>"$STARTUP_LOG" 2>&1) &
    else
      (cd "$STATE_DIR" && exec nohup "$RMQ_SERVER" </dev/null >>"$STARTUP_LOG" 2>&1) &
    fi
    pid=$!
    disown "$pid" 2>/dev/null || true
  fi

  local i=0
  printf 'broker: waiting for 127.0.0.1:%s ' "$PORT"
  while [ "$i" -lt "$START_WAIT_S" ]; do
    probe 127.0.0.1 "$PORT"
    if [ "$PROBE" = amqp ]; then
      printf ' up\n'
      print_ready
      if [ "$HOST" != 127.0.0.1 ]; then
        probe "$HOST" "$PORT"
        [ "$PROBE" = amqp ] || err "warning: the broker answers at 127.0.0.1:$PORT but not at $HOST:$PORT"
      fi
      exit 0
    fi
    if ! kill -0 "$pid" 2>/dev/null && ! own_broker_pid >/dev/null; then
      printf ' failed\n'
      err "RabbitMQ node $NODE exited before answering at 127.0.0.1:$PORT"
      rm -f "$PID_FILE"
      show_logs
      exit 1
    fi
    printf '.'
    sleep 1
    i=$((i + 1))
  done
  printf ' timed out\n'
  err "RabbitMQ node $NODE did not answer at 127.0.0.1:$PORT within ${START_WAIT_S}s"
  show_logs
  err "it may still be booting; stop it with: $(stop_hint)"
  exit 1
}

cmd_stop() {
  parse_address
  local pid
  if ! pid="$(own_broker_pid)"; then
    say "no project-local broker runs for port $PORT (node $NODE); nothing to stop"
    exit 0
  fi
  if ! find_rabbitmq; then
    err "node $NODE runs (pid $pid) but rabbitmqctl was not found; stop it with: kill $pid"
    exit 1
  fi
  broker_env
  say "stopping RabbitMQ node $NODE (pid $pid)"
  if "$RMQ_CTL" -q -n "$NODE" stop "$PID_FILE" </dev/null; then
    say "stopped"
  else
    err "rabbitmqctl could not stop $NODE; sending SIGTERM to pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    local i=0
    while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 30 ]; do
      sleep 1
      i=$((i + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
      err "pid $pid still runs"
      exit 1
    fi
    say "stopped"
  fi
}

cmd_status() {
  parse_address
  local rc=0 pid
  probe "$HOST" "$PORT"
  case "$PROBE" in
    amqp) say "RabbitMQ answers at $HOST:$PORT" ;;
    header) say "$HOST:$PORT answers with another AMQP protocol version"; rc=1 ;;
    silent) say "$HOST:$PORT accepts TCP connections but does not answer AMQP 0-9-1"; rc=1 ;;
    *) say "nothing answers at $HOST:$PORT"; rc=1 ;;
  esac
  if pid="$(own_broker_pid)"; then
    say "project-local node $NODE runs (pid $pid; AMQP 127.0.0.1:$PORT, management http://127.0.0.1:$MGMT_PORT, logs $LOG_DIR)"
  else
    say "project-local node $NODE does not run"
  fi
  exit "$rc"
}

main() {
  local cmd="${1:-start}"
  case "$cmd" in
    -h | --help | help) usage_main; exit 0 ;;
  esac
  shift || true
  local a
  for a in "$@"; do
    case "$a" in
      -h | --help)
        case "$cmd" in
          start) usage_start ;;
          stop) usage_stop ;;
          status) usage_status ;;
          *) usage_main ;;
        esac
        exit 0
        ;;
      *) err "unexpected argument: $a"; usage_main >&2; exit 2 ;;
    esac
  done
  case "$cmd" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) err "unknown command: $cmd"; usage_main >&2; exit 2 ;;
  esac
}

main "$@"
