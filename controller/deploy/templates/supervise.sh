{{# The restart loop for nodes without systemd (process mode); written to DIR/supervise.sh. }}
#!/bin/sh
# Written by `ctl deploy` (fleetbench): keeps the agent running where no systemd runs.
# The agent is restarted 5 s after it exits. `kill -TERM $(cat {{dir_text}}/supervisor.pid)` stops
# the agent and this loop (what `ctl undeploy` and `ctl deploy --upgrade` do).
dir={{dir}}
echo $$ >"$dir/supervisor.pid"
child=
stop() {
    if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null; wait "$child"; fi
    rm -f "$dir/supervisor.pid" "$dir/agent.pid"
    exit 0
}
trap stop TERM INT
while :; do
    /bin/sh "$dir/run-agent.sh" </dev/null >>"$dir/agent.log" 2>&1 &
    child=$!
    echo "$child" >"$dir/agent.pid"
    wait "$child"
    rc=$?
    echo "$(date '+%Y-%m-%d %H:%M:%S') supervise.sh: the agent exited with status $rc; restart in 5 s" \
        >>"$dir/agent.log"
    sleep 5 &
    child=$!
    wait "$child"
done
