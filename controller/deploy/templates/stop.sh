{{# Stop the agent (and its supervisor); in process mode wait until the processes are gone, SIGKILL after STOP_TIMEOUT_S. }}
{{if process}}
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null && grep -q "$2" /proc/"$1"/cmdline 2>/dev/null; }
sup=$(cat {{dir}}/supervisor.pid 2>/dev/null); agent=$(cat {{dir}}/agent.pid 2>/dev/null)
alive "$sup" supervise.sh && kill -TERM "$sup"
i=0
while [ $i -lt {{steps}} ] && { alive "$sup" supervise.sh || alive "$agent" run-agent.sh || \
        alive "$agent" fleetbench-agent; }; do sleep 0.2; i=$((i + 1)); done
alive "$sup" supervise.sh && kill -KILL "$sup"
alive "$agent" run-agent.sh && kill -KILL "$agent"
alive "$agent" fleetbench-agent && kill -KILL "$agent"
rm -f {{dir}}/supervisor.pid {{dir}}/agent.pid
true
{{else}}
{{systemctl}} disable --now {{unit}} >/dev/null 2>&1 || true
{{end}}
