#!/usr/bin/env bash
# The reference: the current shell workflow (DOMAIN.md section 1) doing the same job as the action, step by
# step, one matrix job after the other on this machine. The only stand-in is step 5: the Go `ironcore-image`
# CLI cannot be built here, so each flavor becomes an OCI image layout (layer files hashed with sha256sum
# and linked into blobs/, IronCore media types) pushed with `skopeo copy --all`, the index tag and each arch tag.
#   bench/reference-shell.sh API_URL TOKEN VERSION REGISTRY NAMESPACE WORKDIR
set -euo pipefail

API=$1 TOKEN=$2 VERSION=$3 REGISTRY=$4 NS=$5 WORK=$6
MT=application/vnd.ironcore.image
METAL_CMDLINE='initrd=initrd gl.ovl=/:tmpfs gl.live=1 ip=any console=ttyS0,115200 console=tty0 earlyprintk=ttyS0,115200 consoleblank=0 ignition.firstboot=1 ignition.config.url=http://boot.onmetal.de:8083/ignition ignition.config.url.append.uuid=true ignition.platform.id=metal'
kvm_cmdline() {
  printf 'gl.url=/dev/disk/by-id/virtio-machineboot gl.live=1 gl.ovl=/:tmpfs cgroup_enable=memory swapaccount=1 ignition.firstboot=1 ignition.platform.id=qemu consoleblank=0 console=tty0 console=%s,115200 earlyprintk=%s,115200' "$1" "$1"
}

mkdir -p "$WORK"
# Step 1: the release (the version is given, as in a manual dispatch).
curl -sSf -H "Authorization: Bearer $TOKEN" "$API/repos/gardenlinux/gardenlinux/releases/tags/$VERSION" >"$WORK/release.json"
asset_url() { # pattern arch -> browser_download_url of ^<pattern>-<arch>-<version>-<commit8>.tar.xz$
  /usr/bin/python3 - "$WORK/release.json" "$1" "$2" "$VERSION" <<'EOF'
import json, re, sys
release, pattern, arch, version = sys.argv[1:]
rx = re.compile('^' + re.escape(pattern) + '-' + arch + '-' + re.escape(version) + r'-[0-9a-f]{8}\.tar\.xz$')
print(next(a['browser_download_url'] for a in json.load(open(release))['assets'] if rx.match(a['name'])))
EOF
}

# Adds a file to the layout as a blob; prints its descriptor (the CLI hashes every layer file it packs).
blob() { # layout file mediatype [title]
  local sum size
  sum=$(sha256sum "$2" | cut -d' ' -f1)
  size=$(stat -c %s "$2")
  ln -f "$2" "$1/blobs/sha256/$sum" 2>/dev/null || cp "$2" "$1/blobs/sha256/$sum"
  local title=""
  [ -z "${4:-}" ] || title=',"annotations":{"org.opencontainers.image.title":"'"$4"'"}'
  printf '{"mediaType":"%s","digest":"sha256:%s","size":%s%s}' "$3" "$sum" "$size" "$title"
}
json_blob() { # layout mediatype json -> descriptor
  local f="$1/tmp.json"
  printf '%s' "$3" >"$f"
  blob "$1" "$f" "$2"
  rm -f "$f"
}

publish_flavor() { # image variant pattern
  local image=$1 variant=$2 pattern=$3 layout="$WORK/layout-${1//\//_}-$2" entries="" refs=""
  rm -rf "$layout" && mkdir -p "$layout/blobs/sha256"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
  for arch in amd64 arm64; do
    local dir="$WORK/$pattern-$arch" url file base layers config cmdline ivariant
    rm -rf "$dir" && mkdir -p "$dir"
    # Step 2: download and unpack the whole archive.
    url=$(asset_url "$pattern" "$arch")
    file="$dir/$(basename "$url")"
    curl -sSfL -o "$file" "$url"
    tar -xf "$file" -C "$dir"
    base=$(basename "$file" .tar.xz)
    if [ "$variant" = kvm ]; then
      # Step 3: the .raw is the rootfs layer, the command line goes into the config.
      cmdline=$(kvm_cmdline "$([ "$arch" = arm64 ] && echo ttyAMA0 || echo ttyS0)")
      layers=$(blob "$layout" "$dir/$base.raw" "$MT.rootfs" rootfs.raw)
      ivariant=virtualization
    else
      # Step 4: the nested PXE tarball, the stub out of the rootfs tarball, initrd-uki, ukify.
      tar -xzf "$dir/$base.pxe.tar.gz" -C "$dir"
      local stub=usr/lib/systemd/boot/efi/linux$([ "$arch" = arm64 ] && echo aa64 || echo x64).efi.stub
      tar -xf "$dir/$base.tar" -C "$dir" "$stub"
      cp "$dir/initrd" "$dir/initrd-uki"
      (cd "$dir" && echo root.squashfs | cpio --quiet -H newc -o | xz --check=crc32 >>initrd-uki)
      ukify build --linux "$dir/vmlinuz" --initrd "$dir/initrd-uki" --stub "$dir/$stub" \
        --cmdline "$METAL_CMDLINE" --os-release "@$dir/$base.release" --output "$dir/uki.img" >/dev/null
      cmdline=$METAL_CMDLINE
      layers="$(blob "$layout" "$dir/root.squashfs" "$MT.squashfs" root.squashfs),$(blob "$layout" "$dir/initrd" "$MT.initramfs" initrd),$(blob "$layout" "$dir/vmlinuz" "$MT.kernel" vmlinuz),$(blob "$layout" "$dir/uki.img" "$MT.uki" uki.efi)"
      ivariant=metal
    fi
    # Step 5: the arch manifest.
    config=$(json_blob "$layout" "$MT.config.v1+json" "{\"commandLine\":\"$cmdline\"}")
    local manifest="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":$config,\"layers\":[$layers],\"annotations\":{\"variant\":\"$ivariant\",\"architecture\":\"$arch\"}}"
    local m
    m=$(json_blob "$layout" application/vnd.oci.image.manifest.v1+json "$manifest")
    entries="$entries${entries:+,}${m%\}},\"platform\":{\"architecture\":\"$arch\",\"os\":\"linux\"}}"
    refs="$refs${refs:+,}${m%\}},\"annotations\":{\"org.opencontainers.image.ref.name\":\"$VERSION-$variant-$arch\"}}"
  done
  local index
  index=$(json_blob "$layout" application/vnd.oci.image.index.v1+json \
    "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[$entries]}")
  printf '{"schemaVersion":2,"manifests":[%s,%s]}' "${index%\}},\"annotations\":{\"org.opencontainers.image.ref.name\":\"$VERSION-$variant\"}}" "$refs" >"$layout/index.json"
  skopeo copy --quiet --all --dest-tls-verify=false "oci:$layout:$VERSION-$variant" "docker://$REGISTRY/$NS/$image:$VERSION-$variant"
  for arch in amd64 arm64; do
    skopeo copy --quiet --dest-tls-verify=false "oci:$layout:$VERSION-$variant-$arch" "docker://$REGISTRY/$NS/$image:$VERSION-$variant-$arch"
    rm -rf "$WORK/$pattern-$arch"
  done
  rm -rf "$layout"
}

publish_flavor gardenlinux metal baremetal_pxe
publish_flavor gardenlinux/gardener kvm kvm-gardener_prod
publish_flavor gardenlinux/gardener metal baremetal-gardener_pxe
publish_flavor gardenlinux/capi metal baremetal-capi
