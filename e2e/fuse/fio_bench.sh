#!/usr/bin/env bash
# FUSE acceptance benchmark: fio sequential read (1 MiB blocks) and 4 KiB random read of a 1 GiB
# file through an Alluvium FUSE mount, next to the same fio runs on /dev/shm in the same run (as
# ratios), and the same file read with dd cold (from the UFS) and warm (cached).
#
# Usage: e2e/fuse/fio_bench.sh <mountpoint> <alluvium-path-of-mountpoint>
#   The mount must be writable. Set FREE_CMD to a command that frees the file from the cache
#   (default: `alluvium fs free <path>`), so the cold read comes from the UFS.
#   SIZE (default 1g) and RUNTIME (seconds per random-read run, default 15) can be changed.
#
# Example with a local cluster:
#   alluvium local --data-dir /tmp/al --mem 2GiB &
#   mkdir -p /mnt/al && alluvium fuse mount / /mnt/al --daemon -o write_type=CACHE_THROUGH
#   e2e/fuse/fio_bench.sh /mnt/al /
set -euo pipefail

MNT=${1:?mountpoint}
APATH=${2:-/}
SIZE=${SIZE:-1g}
RUNTIME=${RUNTIME:-15}
NAME=fio-bench.dat
AFILE="${APATH%/}/$NAME"
FREE_CMD=${FREE_CMD:-"alluvium fs free $AFILE"}
SHM=$(mktemp -d /dev/shm/alluvium-fio-XXXXXX)
trap 'rm -rf "$SHM"' EXIT

command -v fio >/dev/null || { echo "fio is not installed (apt-get install fio)" >&2; exit 1; }

# One fio run; prints the bandwidth in MiB/s and the IOPS.
run_fio() { # dir rw bs
  local dir=$1 rw=$2 bs=$3 extra=()
  [ "$rw" = randread ] && extra=(--time_based --runtime="$RUNTIME")
  fio --name=bench --directory="$dir" --filename="$NAME" --rw="$rw" --bs="$bs" --size="$SIZE" \
      --ioengine=psync --invalidate=1 --numjobs=1 "${extra[@]}" --output-format=json 2>/dev/null |
    python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]["read"]; print("%.1f %.0f" % (j["bw_bytes"]/1048576, j["iops"]))'
}

dd_read() { # file -> MiB/s
  local start end
  start=$(date +%s.%N)
  dd if="$1" of=/dev/null bs=1M status=none
  end=$(date +%s.%N)
  python3 -c "import os; s=os.path.getsize('$1')/1048576; print('%.1f' % (s/($end-$start)))"
}

echo "writing the $SIZE test file (random data) to the mount and to /dev/shm"
dd if=/dev/urandom of="$SHM/$NAME" bs=1M count=$(( $(numfmt --from=iec "${SIZE^^}") / 1048576 )) status=none
cp "$SHM/$NAME" "$MNT/$NAME"
cmp "$SHM/$NAME" "$MNT/$NAME"

echo "freeing $AFILE from the cache: $FREE_CMD"
sh -c "$FREE_CMD"
sleep "${FREE_WAIT:-2}"
# Drop the kernel's page cache of the file too, so the cold read really reaches the UFS.
dd if="$MNT/$NAME" iflag=nocache count=0 status=none
cold=$(dd_read "$MNT/$NAME")
warm=$(dd_read "$MNT/$NAME")

read -r seq_m seq_m_iops <<<"$(run_fio "$MNT" read 1m)"
read -r seq_s seq_s_iops <<<"$(run_fio "$SHM" read 1m)"
read -r rnd_m rnd_m_iops <<<"$(run_fio "$MNT" randread 4k)"
read -r rnd_s rnd_s_iops <<<"$(run_fio "$SHM" randread 4k)"

ratio() { python3 -c "print('%.2f' % ($1/$2))"; }
printf '\n%-28s %12s %12s %8s\n' "test" "fuse" "/dev/shm" "ratio"
printf '%-28s %9s MiB/s %6s MiB/s %8s\n' "fio seq read 1MiB" "$seq_m" "$seq_s" "$(ratio "$seq_m" "$seq_s")"
printf '%-28s %8s IOPS %7s IOPS %8s\n' "fio rand read 4KiB" "$rnd_m_iops" "$rnd_s_iops" "$(ratio "$rnd_m_iops" "$rnd_s_iops")"
printf '%-28s %9s MiB/s\n' "dd cold (UFS read-through)" "$cold"
printf '%-28s %9s MiB/s\n' "dd warm (cached)" "$warm"
rm -f "$MNT/$NAME"
