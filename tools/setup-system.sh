#!/usr/bin/env bash
# Installs the Debian packages markfs needs, only those missing: `setup-system.sh`
# what markfs itself and the demo need; `setup-system.sh test` also the servers the
# tests start. Runs as root on a fresh Debian machine; quick (no apt at all) when all
# are present.
set -euo pipefail

# package -> a file that proves it is installed
declare -A need=(
  [fuse3]=/usr/bin/fusermount3
  [libfuse3-dev]=/usr/include/fuse3/fuse_lowlevel.h
  [pkg-config]=/usr/bin/pkg-config
  [attr]=/usr/bin/getfattr
  [openssh-client]=/usr/bin/ssh          # markfs reaches SFTP servers through ssh
  [procps]=/usr/bin/pkill
)
if [ "${1:-}" = test ]; then
  need+=(
    [openssh-server]=/usr/sbin/sshd        # SFTP tests run a real sshd
    [mariadb-server]=/usr/sbin/mariadbd  # MySQL-source tests run a real MariaDB
    [samba]=/usr/sbin/smbd                # SMB share tests run a real smbd
    [smbclient]=/usr/bin/smbclient
    [nfs-ganesha]=/usr/bin/ganesha.nfsd   # NFS share tests run a real nfs-ganesha
    [nfs-ganesha-vfs]=/usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so
    [libnfs-utils]=/usr/bin/nfs-ls        # ... and libnfs's clients
    [rclone]=/usr/bin/rclone              # S3 metadata interop: what rclone writes and reads
    [s3fs]=/usr/bin/s3fs                  # ... and s3fs
  )
fi

# SETUP_ROOT: look for the files below this folder instead of / (with SETUP_DRY_RUN=1:
# print what would be installed, install nothing — how the tests check the lists)
root="${SETUP_ROOT:-}"
missing=()
for pkg in "${!need[@]}"; do
  [ -e "$root${need[$pkg]}" ] || missing+=("$pkg")
done
# PostgreSQL's server binaries live under a versioned path (the tests run one)
if [ "${1:-}" = test ]; then
  compgen -G "$root/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
fi
if [ -n "${SETUP_DRY_RUN:-}" ]; then
  printf '%s\n' "${missing[@]}" | sort
  exit 0
fi
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
