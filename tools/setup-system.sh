#!/usr/bin/env bash
# Installs the Debian packages markfs and its tests need, only those missing.
# Runs as root on a fresh Debian machine; quick (no apt at all) when all are present.
set -euo pipefail

# package -> a file that proves it is installed
declare -A need=(
  [fuse3]=/usr/bin/fusermount3
  [libfuse3-dev]=/usr/include/fuse3/fuse_lowlevel.h
  [pkg-config]=/usr/bin/pkg-config
  [attr]=/usr/bin/getfattr
  [openssh-server]=/usr/sbin/sshd        # SFTP tests run a real sshd
  [openssh-client]=/usr/bin/ssh          # markfs reaches SFTP servers through ssh
  [procps]=/usr/bin/pkill
  [mariadb-server]=/usr/sbin/mariadbd  # MySQL-source tests run a real MariaDB
  [samba]=/usr/sbin/smbd                # SMB share tests run a real smbd
  [smbclient]=/usr/bin/smbclient
  [nfs-ganesha]=/usr/bin/ganesha.nfsd   # NFS share tests run a real nfs-ganesha
  [nfs-ganesha-vfs]=/usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so
  [libnfs-utils]=/usr/bin/nfs-ls        # ... and libnfs's clients
)

missing=()
for pkg in "${!need[@]}"; do
  [ -e "${need[$pkg]}" ] || missing+=("$pkg")
done
# PostgreSQL's server binaries live under a versioned path
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "setup: missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
  exit 1
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Servers are started by the tests on free ports, never as system services: keep the
# packages' scripts from starting smbd, ganesha or rpcbind (policy-rc.d: 101 = deny).
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && own_policy=1
fi
trap '[ "$own_policy" = 1 ] && rm -f "$policy"' EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
