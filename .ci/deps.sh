#!/bin/sh
# Installs the Debian packages ocrkd needs to build, test and run its demo.
# As root it runs apt-get; otherwise it prints the command to run.
PKGS="build-essential pkg-config libopenmpi-dev openmpi-bin libopenblas-dev libhdf5-dev hdf5-tools
libyaml-dev libpng-dev libjpeg-dev libfreetype-dev liblmdb-dev python3-lmdb wamerican python3 python3-numpy python3-h5py procps
fonts-dejavu-core fonts-dejavu-extra fonts-liberation2 fonts-freefont-ttf fonts-urw-base35
fonts-croscore fonts-crosextra-carlito fonts-crosextra-caladea fonts-noto-core fonts-cantarell
fonts-go fonts-hack fonts-inconsolata fonts-linuxlibertine fonts-sil-gentiumplus fonts-sil-charis
fonts-sil-andika fonts-sil-doulos fonts-comic-neue fonts-oxygen fonts-quicksand fonts-league-spartan
fonts-jetbrains-mono fonts-mononoki fonts-courier-prime fonts-b612 fonts-ebgaramond fonts-cabin
fonts-tuffy fonts-anonymous-pro fonts-stix fonts-dkg-handwriting fonts-breip fonts-rufscript
python3-pil python3-matplotlib wbritish wbritish-large fonts-open-sans fonts-lato fonts-roboto-unhinted
fonts-roboto-slab fonts-firacode fonts-adf-accanthis fonts-adf-gillius fonts-dosis fonts-averia-serif-gwf
fonts-humor-sans fonts-agave fonts-prociono fonts-junicode fonts-fantasque-sans fonts-gfs-neohellenic
python3-gi python3-gi-cairo gir1.2-pango-1.0 fonts-paratype fonts-vollkorn fonts-inter fonts-oldstandard fonts-play
fonts-goudybookletter fonts-hermit fonts-league-mono fonts-yanone-kaffeesatz fonts-sora fonts-jura fonts-comfortaa
fonts-manrope fonts-cmu fonts-mplus fonts-3270
fonts-arapey fonts-cardo fonts-century-catalogue fonts-clear-sans fonts-karla fonts-quattrocento fonts-opendin
fonts-junction fonts-fanwood fonts-ocr-a fonts-ocr-b fonts-tiresias fonts-monofur fonts-routed-gothic fonts-eurofurence"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q && apt-get install -y -q --no-install-recommends $missing
else
  echo "ocrkd needs these Debian packages; run as root:" >&2
  echo "  apt-get update && apt-get install -y$missing" >&2
  exit 1
fi
