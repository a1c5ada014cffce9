# Sourced by bench/<name>/run.sh: the options every benchmark runner takes.
#   bench_init NAME DEFAULT_OUT USAGE_LINES "$@"
# parses -b BUILD_DIR (default <repo>/build) and -o OUT_DIR (default DEFAULT_OUT), prints lines
# USAGE_LINES of the calling script on -h or a bad option, checks that the benchmark binary
# build/bench/NAME/NAME_bench exists and that we are root, creates OUT_DIR and sets:
#   bench_bin   the binary        bench_out   the absolute output directory
#   bench_repo  the checkout      bench_args  the arguments after the options (array)
bench_init() {
  local name=$1 default_out=$2 usage=$3 script=$0 build opt
  shift 3
  bench_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  build="$bench_repo/build"
  bench_out="$default_out"
  OPTIND=1
  while getopts "b:o:h" opt; do
    case "$opt" in
      b) build="$(cd "$OPTARG" && pwd)" ;;
      o) bench_out="$OPTARG" ;;
      *) sed -n "${usage}p" "$script"; exit 2 ;;
    esac
  done
  shift $((OPTIND - 1))
  bench_args=("$@")
  bench_bin="$build/bench/$name/${name}_bench"
  [[ -x "$bench_bin" ]] || { echo "missing $bench_bin (build the ${name}_bench target)" >&2; exit 1; }
  [[ $(id -u) -eq 0 ]] || { echo "needs root (BPF)" >&2; exit 1; }
  mkdir -p "$bench_out"
  bench_out="$(cd "$bench_out" && pwd)"
}
