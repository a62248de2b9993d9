// `automod-studio`: the desktop editor. Its logic lives in automod_ui; this file only parses the
// few command-line switches (--version, --headless) and opens the window.
#include <QApplication>
#include <QCommandLineParser>
#include <QIcon>

#include <cstdio>
#include <iostream>

#include "core/util/device.h"
#include "app/studio_headless.h"
#include "ui/main_window.h"

int main(int argc, char** argv) {
  // Debian's LibTorch starts with one intra-op thread: use every hardware thread.
  automod::configureThreads(0);
  // --version and --headless must work without a display: decide before creating QApplication.
  bool headless = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--version" || a == "-v") {
      std::printf("automod-studio %s\n", AUTOMOD_VERSION);
      return 0;
    }
    if (a == "--headless") headless = true;
  }
  if (headless) {
    QCoreApplication app(argc, argv);
    QCoreApplication::setApplicationName("automod-studio");
    QCoreApplication::setApplicationVersion(AUTOMOD_VERSION);
    QCommandLineParser parser;
    parser.setApplicationDescription("Automodulator Studio, headless: reconstructions and a coarse/fine mix");
    parser.addHelpOption();
    parser.addOption({"headless", "Run without a window."});
    parser.addOption({"out", "Output folder.", "DIR", "automod-studio-out"});
    parser.addOption({"model", "Model file (.amod); default: the bundled model.", "MODEL"});
    parser.addOption({"refine", "Refinement steps per photo (0: off; default: the editor's default).", "N"});
    parser.addPositionalArgument("photos", "Photos to use (default: resources/samples/).", "[PHOTO...]");
    parser.process(app);
    automod::HeadlessOptions options;
    options.model = parser.value("model").toStdString();
    options.out = parser.value("out").toStdString();
    for (const auto& p : parser.positionalArguments()) options.photos.push_back(p.toStdString());
    if (parser.isSet("refine")) {
      bool ok = false;
      options.refine_steps = parser.value("refine").toInt(&ok);
      if (!ok || options.refine_steps < 0) {
        std::fprintf(stderr, "automod-studio: --refine takes a number of steps (0: off)\n");
        return 2;
      }
    }
    return automod::runStudioHeadless(options, std::cout, std::cerr);
  }

  QApplication app(argc, argv);
  QApplication::setApplicationName("automod-studio");
  QApplication::setApplicationDisplayName("Automodulator Studio");
  QApplication::setOrganizationName("Automodulator Studio");
  QApplication::setApplicationVersion(AUTOMOD_VERSION);
  QApplication::setWindowIcon(QIcon(":/icons/automod-studio.svg"));
  QCommandLineParser parser;
  parser.setApplicationDescription("Automodulator Studio: mix, sample and edit faces with a deep automodulator");
  parser.addHelpOption();
  parser.addVersionOption();
  parser.addOption({"model", "Model file (.amod) to open.", "MODEL"});
  parser.addOption({"screenshots", "Save a screenshot of each tab into DIR, then quit.", "DIR"});
  parser.addPositionalArgument("photos", "Photos or a project (.json) to open.", "[FILE...]");
  parser.process(app);

  automod::ui::MainWindow window;
  window.openStartupFiles(parser.value("model"), parser.positionalArguments());
  window.show();
  if (parser.isSet("screenshots")) {
    QObject::connect(&window, &automod::ui::MainWindow::screenshotsTaken, &app,
                     [&app](bool ok) { app.exit(ok ? 0 : 1); });
    window.takeScreenshots(parser.value("screenshots"));
  }
  return app.exec();
}
