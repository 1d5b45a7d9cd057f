import type { ContainerInspect } from '../adapters/podman.js';

/** The image a container runs, for the session's record. */
export interface ImageInfo {
  /** The image's id. */
  id?: string;
  /** The registry digest of the image, when it has one. */
  digest?: string;
}

/**
 * Which image (id and digest) a new container of an image reference runs, without a podman call per
 * session: the record of a session names the image it ran, and `podman container inspect` of every
 * container costs a call (~40 ms of CPU here) after it starts.
 *
 * The local store keeps every image's names in one metadata file (`ROOT/DRIVER-images/images.json`
 * for containers/storage); a tag that moves, a pull, a build, a load or a removal rewrites it, and
 * creating or running a container does not. So the answer of the last inspect of a container of that
 * reference holds while that file is unchanged since before the container was made. The file is
 * found from the first inspected container's storage (`ROOT/DRIVER/LAYER/diff`); where it cannot be
 * read (another layout, an additional image store that changed alone, a remote host) nothing is kept
 * and every session's container is inspected, as before.
 */
export class ImageCache {
  /** The store's image metadata file, once a container's inspect showed where the store is. */
  private file: string | undefined;
  private readonly known = new Map<string, { stamp: string; info: ImageInfo }>();

  constructor(private readonly stampOf: (path: string) => string | undefined) {}

  /** The metadata file's state now; taken before a container is made, it dates what is learnt from it. */
  stamp(): string | undefined {
    return this.file === undefined ? undefined : this.stampOf(this.file);
  }

  /** What a container of `image` made now runs, when no image changed since it was last learnt. */
  lookup(image: string, stamp: string | undefined): ImageInfo | undefined {
    const entry = this.known.get(image);
    return entry !== undefined && stamp !== undefined && entry.stamp === stamp ? entry.info : undefined;
  }

  /**
   * Learns from the inspect of a container of `image` made after `stampBefore` was taken. Without a
   * stamp from before (the file was not known yet) only the file is learnt: whatever moved meanwhile,
   * the next session's container is inspected again and is the first answer kept.
   */
  learn(image: string, stampBefore: string | undefined, info: ContainerInspect): void {
    this.file ??= metadataFile(info);
    if (stampBefore === undefined || info.Image === undefined || info.Image === '') return;
    this.known.set(image, {
      stamp: stampBefore,
      info: {
        id: info.Image,
        ...(info.ImageDigest === undefined || info.ImageDigest === '' ? {} : { digest: info.ImageDigest }),
      },
    });
  }
}

/** `ROOT/DRIVER-images/images.json` from a container's layer `ROOT/DRIVER/LAYER/diff`. */
export function metadataFile(info: ContainerInspect): string | undefined {
  const driver = info.GraphDriver?.Name;
  const upper = info.GraphDriver?.Data?.UpperDir;
  if (driver === undefined || upper === undefined || !/^[a-z0-9]+$/.test(driver)) return undefined;
  const match = new RegExp(`^(/.+)/${driver}/[0-9a-f]{64}/diff$`).exec(upper);
  return match ? `${match[1]}/${driver}-images/images.json` : undefined;
}
