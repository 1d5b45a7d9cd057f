/** Which image a session's container runs, without an inspect per session (src/runner/image-cache.ts). */
import { describe, expect, it } from 'vitest';
import type { ContainerInspect } from '../../src/adapters/podman.js';
import { ImageCache, metadataFile } from '../../src/runner/image-cache.js';

const ROOT = '/var/lib/containers/storage';
const layer = 'a'.repeat(64);
const inspected = (image: string): ContainerInspect => ({
  Id: 'c'.repeat(64),
  Name: 'x',
  Image: image,
  ImageDigest: `sha256:${'d'.repeat(64)}`,
  GraphDriver: { Name: 'overlay', Data: { UpperDir: `${ROOT}/overlay/${layer}/diff` } },
  State: { Status: 'running', Running: true, ExitCode: 0 },
  Config: {},
});

describe('image cache', () => {
  it("finds the store's image metadata file from a container's layer, or none", () => {
    expect(metadataFile(inspected('i'))).toBe(`${ROOT}/overlay-images/images.json`);
    const other = { ...inspected('i'), GraphDriver: { Name: 'vfs', Data: { UpperDir: '/elsewhere' } } };
    expect(metadataFile(other)).toBeUndefined();
    expect(metadataFile({ ...inspected('i'), GraphDriver: undefined })).toBeUndefined();
  });

  it('answers while the metadata file is unchanged since before the container was made, and not after', () => {
    let stamp: string | undefined = '1';
    const files: string[] = [];
    const cache = new ImageCache((path) => {
      files.push(path);
      return stamp;
    });
    // The first container: the file is not known yet, so only the file is learnt.
    expect(cache.stamp()).toBeUndefined();
    cache.learn('localhost/x', undefined, inspected('id-1'));
    expect(cache.lookup('localhost/x', cache.stamp())).toBeUndefined();
    // The second: dated before it was made, its answer is kept.
    const before = cache.stamp();
    cache.learn('localhost/x', before, inspected('id-1'));
    expect(files[0]).toBe(`${ROOT}/overlay-images/images.json`);
    expect(cache.lookup('localhost/x', cache.stamp())).toEqual({
      id: 'id-1',
      digest: `sha256:${'d'.repeat(64)}`,
    });
    expect(cache.lookup('localhost/other', cache.stamp())).toBeUndefined();
    // A tag moved (the file changed): asked again.
    stamp = '2';
    expect(cache.lookup('localhost/x', cache.stamp())).toBeUndefined();
    // The file cannot be read: never an answer.
    stamp = undefined;
    expect(cache.lookup('localhost/x', cache.stamp())).toBeUndefined();
  });

  it('keeps nothing learnt from a container made while the images changed', () => {
    let stamp = '1';
    const cache = new ImageCache(() => stamp);
    cache.learn('localhost/x', undefined, inspected('id-0'));
    const before = cache.stamp();
    stamp = '2'; // a rebuild while the container was made
    cache.learn('localhost/x', before, inspected('id-1'));
    expect(cache.lookup('localhost/x', cache.stamp())).toBeUndefined();
  });
});
