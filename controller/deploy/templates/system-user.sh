{{# systemd-system mode: the unit runs as this system user, who owns the data dir and may read the certificates. }}
id -u {{system_user}} >/dev/null 2>&1 || useradd --system --no-create-home --home-dir {{data_dir}} --shell /usr/sbin/nologin {{system_user}}
chown -R {{system_user}}: {{data_dir}}
if [ -d {{certs}} ]; then chown -R {{system_user}}: {{certs}}; fi
chmod 755 {{dir}}
