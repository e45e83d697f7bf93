{{if process}}
cd {{dir}} && if command -v setsid >/dev/null 2>&1; then s=setsid; else s=; fi; $s nohup /bin/sh {{dir}}/supervise.sh </dev/null >/dev/null 2>&1 &
{{else}}
{{if user_unit}}
loginctl enable-linger "$(id -un)" >/dev/null 2>&1 || true
{{end}}
{{systemctl}} daemon-reload && {{systemctl}} enable {{unit}} >/dev/null 2>&1 && {{systemctl}} {{verb}} {{unit}}
{{end}}
