{{# Create the venv (once) and install the wheel with the agent's dependencies; with `--python` (system_site) }}
{{# the venv also sees that Python's packages and fleetbench alone is installed. }}
set -e
mkdir -p {{data_dir}}
{{if system_site}}
[ -x {{venv}}/bin/python ] || {{python}} -m venv --system-site-packages {{venv}}
# A venv made from another venv's Python does not see that venv's packages; a .pth file chains them.
base=$({{python}} -c 'import sysconfig as s; p = s.get_paths(); print(p["purelib"]); p["platlib"] != p["purelib"] and print(p["platlib"])')
site=$({{venv}}/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
printf "%s\n" "$base" >"$site/_fleetbench_base.pth"
{{else}}
[ -x {{venv}}/bin/python ] || {{python}} -m venv {{venv}}
{{end}}
{{if deps_wheels}}
{{venv}}/bin/python -m pip install -q --disable-pip-version-check --no-index --find-links {{wheels}} {{agent_wheel}}
{{end}}
{{if deps_index}}
{{venv}}/bin/python -m pip install -q --disable-pip-version-check {{agent_wheel}}
{{end}}
{{venv}}/bin/python -m pip install -q --disable-pip-version-check --no-deps --force-reinstall {{wheel}}
{{venv}}/bin/fleetbench-agent version
