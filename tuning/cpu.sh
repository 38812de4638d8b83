#!/usr/bin/env bash
# Frequency governor to "performance" on every CPU and THP defrag off, so
# latency does not depend on clock ramp-up or compaction stalls.
set -euo pipefail
for gov in /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor; do
    [ -w "$gov" ] || continue
    echo "$(dirname "$(dirname "$gov")" | xargs basename): $(cat "$gov") -> performance"
    echo performance > "$gov"
done
thp=/sys/kernel/mm/transparent_hugepage/defrag
if [ -w "$thp" ]; then
    echo "THP defrag: $(cat "$thp") -> never"
    echo never > "$thp"
fi
