#!/usr/bin/env bash
# Fills the seed corpora of the fuzz targets (fuzz/corpus/*, git-ignored):
#   capture_reader  the captures of shared/data/pcap-edge (copied, never
#                   committed) plus gzip/zstd-compressed copies of the small ones
#   decode_packet   their frames, as 2-byte big-endian link type + frame
#   filter_compile  a list of filter expressions (below)
# Usage: fuzz/seed.sh [PCAP_EDGE_DIR]   (default: ../shared/data/pcap-edge
# beside the repository, i.e. /work/shared/data/pcap-edge here). A missing
# directory only leaves those corpora empty: the fuzzers still run.
set -euo pipefail
fuzz="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$fuzz")"
src="${1:-${PCAP_EDGE_DIR:-$root/../shared/data/pcap-edge}}"
corpus="$fuzz/corpus"
mkdir -p "$corpus/capture_reader" "$corpus/decode_packet" "$corpus/filter_compile"
# Inputs that once crashed a target stay in its corpus (fuzz/regressions/<target>).
for d in "$fuzz"/regressions/*/; do
  [ -d "$d" ] && cp -f "$d"* "$corpus/$(basename "$d")/"
done

if [ -d "$src" ]; then
  # Flatten dir/file into dir_file so same-named files do not collide.
  (cd "$src" && find . -type f \( -name '*.pcap' -o -name '*.pcapng' -o -name '*.cap' -o -name '*.gz' -o -name '*.zst' \) -print0) |
    while IFS= read -r -d '' f; do
      f="${f#./}"
      cp -f "$src/$f" "$corpus/capture_reader/${f//\//_}"
    done
  # Frames and compressed variants: a small plain Rust program, built
  # without fuzzing flags into fuzz/target/seedgen.
  cargo build --quiet --release --locked --manifest-path "$fuzz/seedgen/Cargo.toml" \
    --target-dir "$fuzz/target/seedgen"
  "$fuzz/target/seedgen/release/trafficscope-fuzz-seedgen" "$src" \
    "$corpus/capture_reader" "$corpus/decode_packet"
else
  echo "seed.sh: $src not found; capture_reader/decode_packet start from empty corpora" >&2
fi

# filter_compile: one expression per file.
i=0
while IFS= read -r expr; do
  [ -n "$expr" ] || continue
  printf '%s' "$expr" >"$corpus/filter_compile/seed-$i"
  i=$((i + 1))
done <<'EXPRS'
tcp port 443
udp and dst port 53
host 192.168.1.2 and not port 22
src net 10.0.0.0/8 or dst net 172.16.0.0 mask 255.240.0.0
ip6 and icmp6
ether host 00:11:22:33:44:55
ether proto \arp
vlan 5 and tcp
vlan and vlan 100 and ip
tcp[tcpflags] & (tcp-syn|tcp-fin) != 0
ip[2:2] - ((ip[0]&0xf)<<2) - ((tcp[12]&0xf0)>>2) != 0
icmp[icmptype] == icmp-echo
portrange 1000-2000 and (udp or sctp)
greater 100 and less 1500
ip broadcast or ether multicast or ip6 multicast
ip proto 47 or ip6 proto \udp
len - ip[2:2] > 0
net 10 and port http
src or dst port (80 or 443 or 8080)
dst host fe80::1 and ip6[40] == 128
arp or rarp
not (tcp or udp) and ip
ip6 host ::1 and tcp[13] & 2 = 2
ether[0] & 1 = 1
udp[8:4] = 0x12345678 and ip[6:2] & 0x1fff = 0
tcp dst port 80 && !(src host 10.0.0.1 || src host 10.0.0.2)
(((((ip)))))
ip[0] * 4 / 2 % 3 ^ 1 | 2 & 3 >= -1
EXPRS
echo "seed.sh: corpora in $corpus: $(ls "$corpus/capture_reader" | wc -l) captures, $(ls "$corpus/decode_packet" | wc -l) frames, $(ls "$corpus/filter_compile" | wc -l) expressions"
