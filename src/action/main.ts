// The action's front door: inputs -> settings -> the shared pipeline -> outputs and job summary.
// Every expected failure ends as one core.setFailed line, without a stack trace.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as core from '@actions/core';
import { attachmentRows, subjectChecksums, type ImageReference } from '../pipeline/outputs';
import { formatTable } from '../pipeline/plan';
import { summaryRows } from '../pipeline/publish';
import { runPublish } from '../pipeline/run';
import { BOOT_TEST_HEADERS, BootTestError, bootTestRows, type BootTestRecord } from '../pipeline/boot-test';
import { describeError, PublishError } from '../util/errors';
import type { Logger } from '../util/logger';
import { readSettings } from './context';

const logger: Logger = {
  debug: (m) => core.debug(m),
  info: (m) => core.info(m),
  warning: (m) => core.warning(m),
  group: (name, fn) => core.group(name, fn),
};

async function main(): Promise<void> {
  const controller = new AbortController();
  // A cancelled workflow sends SIGINT, then SIGTERM 7.5 s later, then SIGKILL (actions/runner,
  // ProcessInvoker.CancelAndKillProcessTree): stop at once, let the stages kill their children and remove
  // their files, and end with one line: a cancellation is expected, not a bug with a stack trace.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () =>
      controller.abort(
        new PublishError(
          `cancelled (${signal}): stopped before the end; blobs already uploaded are kept, and a re-run uploads only the rest`,
        ),
      ),
    );
  }
  try {
    const settings = readSettings();
    const result = await runPublish(settings, logger, { signal: controller.signal });
    core.setOutput('version', result.version);
    core.setOutput('published', String(result.published));
    core.setOutput('skipped-reason', result.skippedReason ?? '');
    core.setOutput('tags', result.tags.join('\n'));
    core.setOutput('digests', JSON.stringify(result.digests));
    core.setOutput('boot-tests', JSON.stringify(result.bootTests));
    core.setOutput('images', JSON.stringify(result.references));
    // A file of its own per run (RUNNER_TEMP outlives the step): the path goes to attest's subject-checksums.
    const attestDir = await mkdtemp(join(process.env.RUNNER_TEMP || tmpdir(), 'ironcore-attest-'));
    const checksums = join(attestDir, 'subject-checksums.txt');
    await writeFile(checksums, subjectChecksums(result.references));
    core.setOutput('subject-checksums', checksums);

    const summary = core.summary.addHeading(`Garden Linux ${result.version}`, 2);
    if (!result.published) {
      summary.addRaw(
        `Nothing pushed: ${result.skippedReason === 'dry-run' ? 'dry run' : 'every tag exists already'}.`,
        true,
      );
    }
    if (result.images.length > 0) {
      summary.addTable([
        [
          { data: 'image', header: true },
          { data: 'digest', header: true },
          { data: 'size', header: true },
          { data: 'time', header: true },
          { data: 'throughput', header: true },
        ],
        ...summaryRows(result),
      ]);
    }
    if (result.published) summary.addRaw(`Blob bytes uploaded: ${result.bytesUploaded}`, true);
    addBootTests(summary, result.bootTests);
    addAttachments(summary, result.references);
    summary.addDetails('All tags', `<pre>${result.tags.join('\n')}</pre>`);
    await summary.write();
    core.info(formatTable(['image', 'digest', 'size', 'time', 'throughput'], summaryRows(result)));
    if (result.bootTests.length > 0)
      core.info(formatTable(BOOT_TEST_HEADERS, bootTestRows(result.bootTests)));
  } catch (error) {
    // A failed boot still reports every boot of the run: which one failed, and where its console log is.
    if (error instanceof BootTestError) {
      core.setOutput('boot-tests', JSON.stringify(error.bootTests));
      const summary = core.summary.addHeading('Boot tests failed: no tag was written', 2);
      addBootTests(summary, error.bootTests);
      await summary.write().catch(() => {});
    }
    // Once cancelled, whatever surfaced first (a stream's AbortError, say) is a consequence: report the cancel.
    core.setFailed(describeError(controller.signal.aborted ? controller.signal.reason : error));
  }
}

function addAttachments(summary: typeof core.summary, references: readonly ImageReference[]): void {
  // Short digests in the summary's table, as in the images table above it.
  const rows = attachmentRows(references).map((row) => [...row.slice(0, 3), row[3]!.slice(0, 19)]);
  if (rows.length === 0) return;
  summary.addHeading('Attachments (OCI referrers)', 3);
  summary.addTable([
    ['image', 'file', 'artifact type', 'digest'].map((h) => ({ data: h, header: true })),
    ...rows,
  ]);
}

function addBootTests(summary: typeof core.summary, records: readonly BootTestRecord[]): void {
  if (records.length === 0) return;
  summary.addHeading('Boot tests', 3);
  summary.addTable([BOOT_TEST_HEADERS.map((h) => ({ data: h, header: true })), ...bootTestRows(records)]);
}

await main();
