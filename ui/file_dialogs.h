#pragma once
// What the editor's file dialogs share: where each kind of dialog starts (the folder last used for
// that purpose, else the user's Pictures folder), and names completed with the chosen filter's
// extension.
#include <QString>

namespace automod::ui {

/// The folder a dialog for `purpose` ("photos", "projects", "models", "export", ...) opens in: the
/// one last used for it (QSettings "dirs/<purpose>") when it still exists, else Pictures, else home.
QString startDirectory(const QString& purpose);
/// `startDirectory(purpose)` joined with a suggested file name.
QString startPath(const QString& purpose, const QString& fileName);
/// Remembers the folder of `path` (a file or a folder) for `purpose`.
void rememberDirectory(const QString& purpose, const QString& path);
/// `path` as typed, with the first extension of `filter` ("JPEG images (*.jpg *.jpeg)") appended
/// when it has none; unchanged when it has one or the filter names none ("All files (*)").
QString withFilterExtension(const QString& path, const QString& filter);
/// The image formats an export writes, as a file dialog filter (PNG first).
QString imageSaveFilters();

}  // namespace automod::ui
