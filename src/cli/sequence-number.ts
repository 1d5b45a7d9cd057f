/** A line's sequence number (`logs --after`): 0 or more, at most 15 digits. Its own module: the quick path has it without typanion. */
export const SEQUENCE_NUMBER_PATTERN = /^(0|[1-9][0-9]{0,14})$/;
