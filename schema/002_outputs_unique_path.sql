-- imgbatch schema, version 2: no two outputs share a file.
--
-- outputs.path is UNIQUE: a path names one image of one job. (imgbatch's own naming makes
-- this so by construction; see README "Outputs". A file that already exists is never
-- replaced: the new image gets the name {stem}-{index}~2.{ext}, ~3, ...)
--
-- Databases written by version 1 may record one path for several outputs: the naming of
-- version 1 mapped e.g. the keys 'a b' and 'a_b', any two non-ASCII keys of the same length,
-- or the key '1' and the key-less job 1 to one file, and each later image replaced the file
-- of the earlier one. The file on disk holds the image of the newest of those outputs (the
-- highest id: renames happened in commit order), so that row keeps the path; each older
-- row's path becomes '<path>#overwritten-<output id>', a name that is no file: its image
-- was lost (its sha256 and size still say what it was).
UPDATE outputs SET path = path || '#overwritten-' || id
WHERE id IN (
    SELECT o.id FROM outputs o
    JOIN (SELECT path, max(id) AS newest FROM outputs GROUP BY path HAVING count(*) > 1) d
      ON d.path = o.path
    WHERE o.id < d.newest
);
CREATE UNIQUE INDEX outputs_path ON outputs(path);
