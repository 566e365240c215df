#!/usr/bin/env bash
# Old (before the shared probe run) vs new probe: full run, Vulkan, same GPU, alternating.
set -u
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
icd=$(ls /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd*.json /usr/share/vulkan/icd.d/nvidia_icd*.json /etc/vulkan/icd.d/nvidia_icd*.json /usr/local/nvidia/icd.d/*.json 2>/dev/null | head -1)
[ -z "$icd" ] && icd=$(find / -name 'nvidia_icd*.json' -not -path '/proc/*' 2>/dev/null | head -1)
echo "icd=$icd"; ldconfig -p | grep -i "vulkan\|libGLX_nvidia\|libnvidia-glcore" | head -5
export VK_DRIVER_FILES=$icd
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv > "$OUT/gpu.csv" 2>&1
chmod +x .bin/headroom-old .bin/headroom-new
start=$(date +%s)
run() {
  local tag=$1 bin=$2 t0 t1
  t0=$(date +%s%N)
  timeout 250 "$bin" probe --backend vulkan --out "$OUT/$tag.json" > "$OUT/$tag.txt" 2>&1
  local rc=$?
  t1=$(date +%s%N)
  echo "$tag rc=$rc wall_ms=$(( (t1 - t0) / 1000000 ))" | tee -a "$OUT/times.txt"
}
run old1 .bin/headroom-old
run new1 .bin/headroom-new
if [ $(( $(date +%s) - start )) -lt 280 ]; then run new2 .bin/headroom-new; fi
if [ $(( $(date +%s) - start )) -lt 420 ]; then run old2 .bin/headroom-old; fi
cat "$OUT/times.txt"
