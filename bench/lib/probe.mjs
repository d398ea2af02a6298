// Preloaded into the measured action (`node --import ./bench/lib/probe.mjs dist/index.js`): on exit it
// writes the process's own peak RSS, /proc/self/io and the bytes it read from files through fs.read
// (every createReadStream: uploads, hashing, initrd-uki building) to $BENCH_PROBE_OUT. The page cache
// hides re-reads from /proc's read_bytes, so the fs.read count is what shows a file read back.
import fs from 'node:fs';

let fileBytesRead = 0;
const read = fs.read;
fs.read = function (...args) {
  const callback = args[args.length - 1];
  if (typeof callback !== 'function') return read.apply(this, args);
  args[args.length - 1] = (error, bytesRead, buffer) => {
    if (!error) fileBytesRead += bytesRead;
    callback(error, bytesRead, buffer);
  };
  return read.apply(this, args);
};

process.on('exit', () => {
  const out = process.env.BENCH_PROBE_OUT;
  if (!out) return;
  const io = Object.fromEntries(
    fs
      .readFileSync('/proc/self/io', 'utf8')
      .trim()
      .split('\n')
      .map((line) => {
        const [k, v] = line.split(':');
        return [k.trim(), Number(v)];
      }),
  );
  const usage = process.resourceUsage();
  fs.writeFileSync(
    out,
    JSON.stringify({
      maxRssKiB: usage.maxRSS,
      fileBytesRead,
      io,
      cpu: usage.userCPUTime + usage.systemCPUTime,
    }),
  );
});
