// apt-get behind a proxy: apt reads only the lowercase proxy variables, and sudo's env_reset drops them. Checked
// with the real sudo from Debian (as root, as .ci/run runs; GitHub's runners grant `NOPASSWD: ALL` alike).
import { describe, expect, it } from 'vitest';
import { aptProxyEnvironment, findOnPath, runCommand, sudoPrefix } from '../../src/util/system';

const PROXY = 'http://builder:s3cret-pass@proxy.invalid:3128';

describe('apt behind a proxy', () => {
  it('gives apt the lowercase variables, from the uppercase forms where only those are set', () => {
    expect(
      aptProxyEnvironment({ HTTPS_PROXY: PROXY, NO_PROXY: 'localhost,.corp', http_proxy: 'http://a:8080' }),
    ).toEqual({
      http_proxy: 'http://a:8080',
      https_proxy: PROXY,
      no_proxy: 'localhost,.corp',
    });
    expect(aptProxyEnvironment({ PATH: '/usr/bin', HTTPS_PROXY: '' })).toEqual({});
  });

  it.runIf(process.getuid?.() === 0)(
    'sudo keeps the proxy variables, which it drops otherwise, with no URL on its command line',
    async () => {
      const sudo = await findOnPath('sudo');
      expect(sudo, 'sudo (installed by .ci/setup)').toBeDefined();
      const env = {
        PATH: process.env.PATH ?? '',
        ...aptProxyEnvironment({ HTTPS_PROXY: PROXY, HTTP_PROXY: PROXY, NO_PROXY: 'localhost' }),
      };

      const prefix = await sudoPrefix(sudo!, env);
      expect(prefix).toEqual([sudo, '-n', '--preserve-env=http_proxy,https_proxy,no_proxy']);
      expect(prefix!.join(' ')).not.toContain('s3cret');
      const [command, ...args] = [...prefix!, 'env'];
      const kept = await runCommand(command!, args, undefined, { env });
      expect(kept.code).toBe(0);
      expect(kept.stdout.split('\n')).toEqual(
        expect.arrayContaining([`http_proxy=${PROXY}`, `https_proxy=${PROXY}`, 'no_proxy=localhost']),
      );

      // What the prefix is for: plain `sudo -n` resets the environment.
      const reset = await runCommand(sudo!, ['-n', 'env'], undefined, { env });
      expect(reset.code).toBe(0);
      expect(reset.stdout).not.toMatch(/_proxy=/);

      // Without a proxy, nothing to keep.
      expect(await sudoPrefix(sudo!, { PATH: env.PATH })).toEqual([sudo, '-n']);
    },
  );
});
