#!/bin/sh
# Written by `ctl deploy` (fleetbench): the agent in the foreground; systemd or supervise.sh runs it.
exec {{argv}}
