{{# Remove what ctl deploy wrote; the data dir stays unless purge_data (also when it lies inside DIR). }}
set -e
{{if not process}}
rm -f {{unit_path}}; {{systemctl}} daemon-reload >/dev/null 2>&1 || true
{{end}}
if [ -d {{dir}} ]; then for f in {{dir}}/* {{dir}}/.[!.]*; do [ -e "$f" ] || continue; [ "$f" = {{data_dir}} ] && continue; rm -rf "$f"; done; fi
{{if purge_data}}
rm -rf {{data_dir}}
{{end}}
rmdir {{dir}} 2>/dev/null || true
