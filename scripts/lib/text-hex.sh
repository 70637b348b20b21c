# Sourced by scripts/assemble-stub.sh and scripts/build-supervisor.sh:
# text_hex ARCH SOURCE TMPDIR prints the machine code of an assembly file's
# .text section as hex, for ARCH x64 (binutils) or arm64
# (binutils-aarch64-linux-gnu).
text_hex() {
  local arch=$1 src=$2 tmp=$3 as=as objcopy=objcopy
  local flags=(--64)
  if [ "$arch" = arm64 ]; then as=aarch64-linux-gnu-as objcopy=aarch64-linux-gnu-objcopy flags=(); fi
  # Inside $(...) errexit does not apply: each step's failure is returned.
  "$as" "${flags[@]}" -o "$tmp/text-$arch.o" "$src" || return
  "$objcopy" -O binary -j .text "$tmp/text-$arch.o" "$tmp/text-$arch.bin" || return
  od -An -v -tx1 "$tmp/text-$arch.bin" | tr -d ' \n'
}
