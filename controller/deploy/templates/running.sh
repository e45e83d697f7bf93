{{# Prints `running` or `stopped`. }}
{{if process}}
pid=$(cat {{dir}}/supervisor.pid 2>/dev/null) && kill -0 "$pid" 2>/dev/null && grep -q supervise.sh /proc/"$pid"/cmdline 2>/dev/null && echo running || echo stopped
{{else}}
{{systemctl}} is-active --quiet {{unit}} && echo running || echo stopped
{{end}}
