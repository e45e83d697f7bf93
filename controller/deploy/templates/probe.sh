{{# What ctl deploy needs to know first: uid, home, whether systemd runs, whether this user has a user manager. }}
id -u
printf '%s\n' "$HOME"
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then echo systemd; else echo none; fi
if systemctl --user show-environment >/dev/null 2>&1; then echo userbus; else echo nobus; fi
