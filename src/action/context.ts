// Turns the action's inputs into one typed settings object (the docker/build-push-action habit), so
// main.ts stays short and every input is validated in one place before any work starts.
import { join } from 'node:path';
import * as core from '@actions/core';
import type { UkiBuilderChoice } from '../boot';
import { parseArchitectures, parseFlavors } from '../pipeline/flavors';
import { parseAnnotations, type RunSettings } from '../pipeline/run';
import { parseAcceleratorChoice, parseBootTestChoice, parseExpect } from '../pipeline/boot-test';
import { parseAttachChoice } from '../pipeline/attach';
import { proxySecrets, proxySettings } from '../util/dispatcher';
import { PublishError, printable } from '../util/errors';

function bool(name: string): boolean {
  const value = core.getInput(name).trim().toLowerCase();
  if (value === '' || value === 'false') return false;
  if (value === 'true') return true;
  throw new PublishError(`input ${name}: "${printable(value)}" is not true or false`);
}

export function readSettings(env: NodeJS.ProcessEnv = process.env): RunSettings {
  const githubToken = core.getInput('github-token');
  const registryPassword = core.getInput('registry-password');
  // Masked before anything else can print them.
  if (githubToken) core.setSecret(githubToken);
  if (registryPassword) core.setSecret(registryPassword);
  // A proxy URL may carry a password too (http://user:password@proxy:3128).
  for (const secret of proxySecrets(proxySettings(env))) core.setSecret(secret);

  const ukiBuilder = core.getInput('uki-builder') || 'auto';
  if (!['auto', 'ukify', 'native'].includes(ukiBuilder)) {
    throw new PublishError(`input uki-builder: "${printable(ukiBuilder)}" must be auto, ukify or native`);
  }
  const combined = (core.getInput('combined-index') || 'auto').toLowerCase();
  if (!['auto', 'true', 'false'].includes(combined)) {
    throw new PublishError(`input combined-index: "${printable(combined)}" must be auto, true or false`);
  }
  const concurrencyText = core.getInput('concurrency') || '4';
  const description = core.getInput('description');
  const ociLayout = core.getInput('oci-layout');
  const bootTimeout = core.getInput('boot-test-timeout').trim();
  const bootExpect = parseExpect(core.getInput('boot-test-expect'));
  return {
    version: core.getInput('version').trim(),
    sourceRepository: core.getInput('source-repository') || 'gardenlinux/gardenlinux',
    ...(githubToken ? { githubToken } : {}),
    ...(env.GITHUB_API_URL ? { apiUrl: env.GITHUB_API_URL } : {}),
    registry: core.getInput('registry').trim(),
    namespace: core.getInput('namespace').trim().toLowerCase(),
    registryUsername: core.getInput('registry-username'),
    registryPassword,
    insecureRegistry: bool('insecure-registry'),
    flavors: parseFlavors(core.getInput('flavors')),
    selectFlavors: core
      .getInput('select-flavors')
      .split(/[\s,]+/)
      .filter(Boolean),
    architectures: parseArchitectures(core.getInput('architectures')),
    force: bool('force'),
    dryRun: bool('dry-run'),
    assembleOnly: bool('assemble-only'),
    ...(combined === 'auto' ? {} : { combinedIndex: combined === 'true' }),
    ...(ociLayout ? { ociLayout } : {}),
    concurrency: /^[0-9]+$/.test(concurrencyText) ? Number(concurrencyText) : NaN,
    ukiBuilder: ukiBuilder as UkiBuilderChoice,
    installUkify: bool('install-ukify'),
    tagSuffix: core.getInput('tag-suffix').trim(),
    annotations: parseAnnotations(core.getInput('annotations')),
    ...(description ? { description } : {}),
    bootTest: parseBootTestChoice(core.getInput('boot-test')),
    bootTestAccel: parseAcceleratorChoice(core.getInput('boot-test-accel')),
    ...(bootTimeout ? { bootTestTimeout: /^[0-9]+$/.test(bootTimeout) ? Number(bootTimeout) : NaN } : {}),
    ...(bootExpect ? { bootTestExpect: bootExpect } : {}),
    installQemu: bool('install-qemu'),
    attach: parseAttachChoice(core.getInput('attach')),
    // Serial logs outlive the step: a later upload-artifact step can keep them.
    ...(env.RUNNER_TEMP ? { bootLogDir: join(env.RUNNER_TEMP, 'ironcore-boot-logs') } : {}),
  };
}
