#!/usr/bin/env bash
# Pins the interrupts of a network interface's queues to a CPU list,
# round-robin: irq-affinity.sh eth0 0,1
set -euo pipefail
iface=${1:?usage: irq-affinity.sh IFACE CPU[,CPU...]}
IFS=, read -r -a cpus <<< "${2:?usage: irq-affinity.sh IFACE CPU[,CPU...]}"
mapfile -t irqs < <(grep -E "\b${iface}\b|${iface}-" /proc/interrupts | cut -d: -f1 | tr -d ' ')
[ ${#irqs[@]} -gt 0 ] || { echo "no interrupts found for $iface" >&2; exit 1; }
i=0
for irq in "${irqs[@]}"; do
    cpu=${cpus[$((i % ${#cpus[@]}))]}
    echo "irq $irq -> cpu $cpu"
    echo "$cpu" > "/proc/irq/$irq/smp_affinity_list"
    i=$((i + 1))
done
