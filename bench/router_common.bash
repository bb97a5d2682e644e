# Sourced by bench/router_bench.sh and bench/router_cost.sh (not run on its own): the upstream
# that answers at once (Debian's nginx, one worker, a non-daemon on a free port with a temporary
# config: a fixed completion JSON body at /v1/completions, a fixed SSE body at /v1/stream) and
# the router in front of it. Sourcing it makes `tmp` (a scratch folder) and `pids` (processes to
# stop) and an EXIT trap that stops them and removes `tmp`.

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.2
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_nginx [PREFIX COMMAND...]: sets NGINX (the base URL).
start_nginx() {
  local port
  port=$(free_port)
  mkdir -p "$tmp/nginx"
  cat >"$tmp/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx;
  proxy_temp_path $tmp/nginx;
  fastcgi_temp_path $tmp/nginx;
  uwsgi_temp_path $tmp/nginx;
  scgi_temp_path $tmp/nginx;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$port;
    location = /health { return 200 '{"status":"ok"}'; }
    location = /v1/completions {
      default_type application/json;
      return 200 '{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":" Hello! How can I help you today?","finish_reason":"stop","logprobs":null}],"usage":{"prompt_tokens":3,"completion_tokens":9,"total_tokens":12}}';
    }
    location = /v1/stream {
      default_type text/event-stream;
      return 200 'data: {"id":"cmpl-1","object":"text_completion","choices":[{"index":0,"text":" Hello"}]}\n\ndata: {"id":"cmpl-1","object":"text_completion","choices":[{"index":0,"text":"!","finish_reason":"stop"}]}\n\ndata: [DONE]\n\n';
    }
  }
}
CONF
  "$@" nginx -c "$tmp/nginx.conf" -p "$tmp" -e "$tmp/nginx/error.log" &
  pids+=($!)
  NGINX=http://127.0.0.1:$port
  for _ in $(seq 1 50); do
    curl -sf "$NGINX/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "nginx did not start: $(cat "$tmp/nginx/error.log")" >&2
  return 1
}

# start_router BIN THREADS NAME [PREFIX COMMAND...]: a router over $NGINX, with the YAML lines in
# $ROUTER_EXTRA_YAML added to its config; sets ROUTER (the base URL) and ROUTER_PID.
start_router() {
  local bin=$1 threads=$2 name=$3
  shift 3
  printf 'port: 0\nthreads: %s\nlog_level: warn\nbackends: [%s]\n%s\n' "$threads" "$NGINX" \
    "${ROUTER_EXTRA_YAML:-}" >"$tmp/$name.yaml"
  "$@" "$bin" route --config "$tmp/$name.yaml" >"$tmp/$name.out" 2>"$tmp/$name.log" &
  ROUTER_PID=$!
  pids+=($ROUTER_PID)
  ROUTER=
  for _ in $(seq 1 100); do
    ROUTER=$(sed -n 's/.*routing at \(http:[^ ]*\) .*/\1/p' "$tmp/$name.out" | head -1)
    [[ -n "$ROUTER" ]] && break
    sleep 0.1
  done
  [[ -n "$ROUTER" ]] || { cat "$tmp/$name.log" >&2; echo "router did not start" >&2; return 1; }
  # The first health check admits nginx.
  for _ in $(seq 1 50); do
    curl -sf "$ROUTER/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "router never became healthy" >&2
  return 1
}
